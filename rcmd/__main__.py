from .cli import client_entry

client_entry()

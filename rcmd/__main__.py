from .oneshot import client_entry

client_entry()

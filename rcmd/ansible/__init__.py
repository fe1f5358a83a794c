"""rcmd as an Ansible connection: the plugin is ``rcmd/ansible/rcmd.py`` (this directory is
what ``rcmd ansible-path`` prints, for ANSIBLE_CONNECTION_PLUGINS)."""

from pathlib import Path

#: The directory holding the connection plugin.
PLUGIN_DIR = Path(__file__).resolve().parent

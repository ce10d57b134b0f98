from cairn.cli.main import entry

entry()

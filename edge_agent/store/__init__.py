"""What the agent keeps on disk: installed model versions with the active pointer, trusted
keys, its identity key, the canary run before a switch, and the USB inbox."""

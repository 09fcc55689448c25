"""The embedded runtime: runs, actors, the actor system and the local host."""

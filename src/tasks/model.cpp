// Placeholder so the library has a source until the task model lands.

"""Training the bundled models (CLAP, generator) on catalogs."""

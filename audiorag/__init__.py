"""The application: settings, component wiring, CLI, HTTP service, web page, and the tools
(demo-catalog synthesis, training, evaluation) built on the layers index/, generation/, rag/."""

"""One audit run: the orchestration of phases and the files it writes."""

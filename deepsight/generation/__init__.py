"""Text generation backends behind one interface: hf (in-process), vllm (engine), openai (server)."""

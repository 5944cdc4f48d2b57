"""What both apps use and neither owns: the API's error contract and its exception handler, the
OpenAPI helpers for errors, channel-layer sends from synchronous code, and WebSocket access by API
key or staff session. Imports nothing from the apps (an API key is looked up through the
`API_KEY_LOOKUP` setting, the way DRF finds its authentication classes)."""

curl -X POST http://proxy:81/deregister \
  -H "Content-Type: application/json" \
  -d '{
    "host": "api.example.com",
    "path": "/v2"
  }'

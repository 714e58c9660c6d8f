curl -X POST http://proxy:81/register \
  -H "Content-Type: application/json" \
  -d '{
    "host": "api.example.com",
    "path": "/v2",
    "backend": "http://api-v2:9000",
    "options": {
      "timeout": "60s",
      "websocket": true
    }
  }'

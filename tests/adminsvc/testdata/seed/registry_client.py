import requests
import json

REGISTRY_URL = "http://proxy:81"

def register_route(host, path, backend, options=None):
    """Register a route with the proxy."""
    payload = {
        "host": host,
        "path": path,
        "backend": backend
    }
    if options:
        payload["options"] = options
    
    response = requests.post(
        f"{REGISTRY_URL}/register",
        headers={"Content-Type": "application/json"},
        json=payload
    )
    
    if response.status_code == 200:
        print(f"✓ Registered {host}{path} → {backend}")
        return response.json()
    else:
        print(f"✗ Failed to register: {response.text}")
        return None

def deregister_route(host, path):
    """Deregister a route from the proxy."""
    payload = {
        "host": host,
        "path": path
    }
    
    response = requests.post(
        f"{REGISTRY_URL}/deregister",
        headers={"Content-Type": "application/json"},
        json=payload
    )
    
    if response.status_code == 200:
        print(f"✓ Deregistered {host}{path}")
        return response.json()
    else:
        print(f"✗ Failed to deregister: {response.text}")
        return None

def list_routes():
    """List all registered routes."""
    response = requests.get(f"{REGISTRY_URL}/routes")
    
    if response.status_code == 200:
        data = response.json()
        print(f"Total routes: {data['total']}")
        for route in data['routes']:
            print(f"  {route['host']}{route['path']} → {route['backend']}")
        return data['routes']
    else:
        print(f"✗ Failed to list routes: {response.text}")
        return []

# Example usage
if __name__ == "__main__":
    # Register a route
    register_route(
        host="api.example.com",
        path="/v2",
        backend="http://api-v2:9000",
        options={
            "timeout": "60s",
            "websocket": True,
            "rate_limit": {
                "enabled": True,
                "requests_per_min": 100
            }
        }
    )
    
    # List all routes
    list_routes()
    
    # Deregister on shutdown
    deregister_route("api.example.com", "/v2")

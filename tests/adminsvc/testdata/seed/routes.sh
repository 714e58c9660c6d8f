curl http://proxy:81/routes

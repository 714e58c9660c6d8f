// Package realkong runs the project against real Kongs (3.4.2 and 3.9.3
// built from source by ../shared/realkong/build.sh), driving them as
// tests/e2e drives the harness and tests/adminsvc drives the Admin API
// fake, with the same assertions: the real plugin binary in Kong's own
// plugin server machinery, adminsvc syncing Kong in DB-less and DB mode,
// decK as a client, real redis-server processes.
//
// Environment:
//
//	SR_REALKONG_DIRS="/opt/realkong /opt/realkong39"
//
// names the Kong builds (each a build.sh DEST holding bin/kong-start.sh);
// every scenario runs once per build, as a subtest named by Kong's
// version. Without it every test skips and says how to run it; with CI set
// and no SR_REALKONG_DIRS every test fails (CI never skips).
//
// Each test process starts at most one Kong per build and mode (lazily,
// shared by the tests, stopped at the end) with its own prefix under a
// temporary directory, free ports, and in DB mode its own Postgres database
// on 127.0.0.1:5432 (role postgres creates it, owner kong; dropped at the
// end). When nothing answers there, the build's bin/services.sh starts
// Postgres, and it is stopped again at the end. Kongs get
// KONG_DB_UPDATE_FREQUENCY=1 and KONG_WORKER_STATE_UPDATE_FREQUENCY=1 so a
// route created in DB mode routes within about a second (default 5 s).
// Kongs and databases left by an earlier run that was killed (go test
// -timeout exits without cleanup) are stopped and dropped at the next start.
//
//	SR_REALKONG_DIRS="/opt/realkong /opt/realkong39" go test -count=1 -v ./tests/realkong/
//
// It holds tests only; nothing imports it.
package realkong

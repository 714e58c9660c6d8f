package harness

import "os"

// mkShortTemp makes a prefix directory under /tmp: unix socket paths are
// limited to about 108 bytes and t.TempDir() paths can be longer.
func mkShortTemp() (string, error) { return os.MkdirTemp("/tmp", "kh-") }

func removeAll(dir string) { _ = os.RemoveAll(dir) }

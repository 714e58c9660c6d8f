package shipping

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// executableMagic are the first bytes of the executable formats a build here
// can produce: ELF (Linux), Mach-O (macOS, both byte orders and fat), PE (MZ).
var executableMagic = [][]byte{
	{0x7f, 'E', 'L', 'F'},
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf},
	{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe},
	{0xca, 0xfe, 0xba, 0xbe},
	{'M', 'Z'},
}

// A built binary must never be tracked: a 27 MB plugin binary was committed
// once. Every tracked file is read (its first bytes) and any executable
// image fails the test with its path.
func TestNoBuiltBinaryIsTracked(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout: nothing is tracked")
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range bytes.Split(bytes.TrimRight(out, "\x00"), []byte{0}) {
		path := filepath.Join(root, string(name))
		f, err := os.Open(path)
		if err != nil {
			continue // deleted in the work tree, or a submodule
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		_ = f.Close()
		for _, magic := range executableMagic {
			if n >= len(magic) && bytes.Equal(head[:len(magic)], magic) {
				t.Errorf("%s is a built executable and is tracked by git: git rm --cached it and add it to .gitignore", name)
			}
		}
	}
}

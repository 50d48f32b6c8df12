package cabi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The mirror of heimdall_host_t in host.go must have the header's layout: compile a program against the header
// (when this SDK sits in the Heimdall repository) and compare.
func TestHostTableMatchesTheHeader(t *testing.T) {
	include, _ := filepath.Abs(filepath.Join("..", "..", "..", "native", "include"))
	if _, err := os.Stat(filepath.Join(include, "heimdall_plugin.h")); err != nil {
		t.Skip("heimdall_plugin.h is not next to the SDK")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "layout.c")
	program := `#include <stdio.h>
#include <stddef.h>
#include "heimdall_plugin.h"
#define O(m) printf(" %zu", offsetof(heimdall_host_t, m))
int main(void) {
  printf("%zu", sizeof(heimdall_host_t));
  O(size); O(abi_version); O(log); O(metric_define); O(metric_record); O(state_get); O(state_set);
  O(kv_get); O(kv_set); O(kv_incr); O(kv_cas);
  return 0;
}
`
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "layout")
	if out, err := exec.Command("cc", "-I", include, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	size, offsets := hostLayout()
	got := []string{strconv.Itoa(int(size))}
	for _, o := range offsets {
		got = append(got, strconv.Itoa(int(o)))
	}
	if want := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the SDK's mirror of heimdall_host_t has size and offsets %v; the header's are %v", got, want)
	}
}

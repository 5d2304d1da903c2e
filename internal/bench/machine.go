package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPU      string
	NumCPU   int
	MemTotal string // from /proc/meminfo
	Go       string
	OS, Arch string
}

// ThisMachine reads the CPU model from /proc/cpuinfo and the memory from
// /proc/meminfo (empty where they cannot be read).
func ThisMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	return m
}

func (m Machine) String() string {
	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	s := fmt.Sprintf("%s, %d CPUs", cpu, m.NumCPU)
	if m.MemTotal != "" {
		s += ", " + m.MemTotal + " RAM"
	}
	return s + fmt.Sprintf(", %s %s/%s", m.Go, m.OS, m.Arch)
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// LoadAvg is the first three fields of /proc/loadavg (empty where it
// cannot be read): other work on the machine shows in the figures.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

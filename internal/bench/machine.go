package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
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
	for _, k := range []string{"model name", "Hardware", "cpu model", "uarch"} { // x86, then ARM, MIPS, RISC-V
		if m.CPU = procField("/proc/cpuinfo", k); m.CPU != "" {
			break
		}
	}
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

// CPUTimes is the machine-wide CPU time from /proc/stat, in seconds: the
// difference of two readings over a window tells how busy the machine was
// and how much of it other processes took.
type CPUTimes struct {
	Busy, IOWait, Steal float64
	OK                  bool // false where /proc/stat is not (not Linux)
}

// ReadCPUTimes reads the "cpu" line of /proc/stat.
func ReadCPUTimes() CPUTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return CPUTimes{}
	}
	var v [8]float64
	for i := range v {
		n, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return CPUTimes{}
		}
		v[i] = n / 100 // USER_HZ
	}
	// user nice system idle iowait irq softirq steal
	return CPUTimes{Busy: v[0] + v[1] + v[2] + v[5] + v[6], IOWait: v[4], Steal: v[7], OK: true}
}

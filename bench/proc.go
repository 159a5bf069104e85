package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat
// (sysconf(_SC_CLK_TCK), 100 on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procUsage is one reading of a process's CPU time and resident memory.
type procUsage struct {
	cpu time.Duration // user + system
	rss int64         // bytes
}

// readProc reads the CPU time and RSS of process pid from /proc (proc(5)).
func readProc(pid int) (procUsage, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procUsage{}, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procUsage{}, err
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procUsage{}, err
	}
	rss, err := parseStatusRSS(status)
	return procUsage{cpu: cpu, rss: rss}, err
}

// parseStatCPU returns utime + stime (fields 14 and 15) of a stat line.
// The command name (field 2) is in parentheses and may hold spaces or
// parentheses itself, so fields are counted after the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc stat")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc stat")
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: malformed /proc stat times")
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// parseStatusRSS returns VmRSS of a /proc status file, in bytes.
func parseStatusRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: no VmRSS in /proc status")
}

// selfCPU is this process's CPU time (getrusage(2), microsecond resolution).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineUsage is the whole machine's busy CPU time, from /proc/stat.
type machineUsage struct {
	busy time.Duration // summed over all CPUs
	ok   bool
}

// readMachine reads the busy time of all CPUs together.
func readMachine() machineUsage {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineUsage{}
	}
	busy, err := parseMachineBusy(b)
	return machineUsage{busy: busy, ok: err == nil}
}

// parseMachineBusy sums user, nice, system, irq, softirq and steal of the
// "cpu" line of /proc/stat (proc(5)); idle and iowait are not busy.
func parseMachineBusy(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("bench: malformed /proc/stat")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: malformed /proc/stat")
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// process is a child process the harness starts, stops, kills and starts
// again, its output appended to one log file per start.
type process struct {
	name string   // "worker", "devserver": log files are <name>-<n>.log
	path string   // executable
	args []string // arguments
	env  []string // extra environment (appended to the harness's)
	dir  string   // log folder

	starts int
	cmd    *exec.Cmd
	done   chan struct{} // closed when the running process has exited
	logs   []string      // every log file written
}

// start runs the process; it does not wait for it to be ready.
func (p *process) start() error {
	if p.running() {
		return fmt.Errorf("%s: already running", p.name)
	}
	p.starts++
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, p.starts))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.logs = append(p.logs, logPath)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group (a terminal's Ctrl-C goes to the harness,
	// which stops it in order), and killed with the harness if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *process) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid is the running process's id, 0 when none.
func (p *process) pid() int {
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.done
	return nil
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *process) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return p.kill()
	}
}

// exited reports whether the process ended by itself (a crash) and how.
func (p *process) exited() (bool, string) {
	if p.done == nil || p.running() {
		return false, ""
	}
	return true, p.cmd.ProcessState.String()
}

// freePort is a TCP port free on 127.0.0.1 now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// waitHTTP polls url until it answers 200 or timeout passes (or the
// process p, when given, exits).
func waitHTTP(ctx context.Context, url string, timeout time.Duration, p *process) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if p != nil {
			if gone, how := p.exited(); gone {
				return fmt.Errorf("%s exited (%s) before %s answered; see %s", p.name, how, url, p.logs[len(p.logs)-1])
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %v", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RepoRoot is the folder holding go.mod, above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildWorker builds the worker binary (./worker of the repository at root)
// into dir and returns its path. The worker must be a process of its own
// for SIGKILL to be a real crash.
func BuildWorker(ctx context.Context, root, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "worker")
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=false", "-o", out, "./worker")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./worker: %w\n%s", err, b)
	}
	return out, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"go.temporal.io/api/workflowservice/v1"
)

// scanSecrets exports every workflow history of the run with the Temporal
// CLI (`temporal workflow show --output json`, open and closed runs alike,
// each continue-as-new run), both schedules' descriptions, and reads every
// log file the run wrote (the worker's, one per start, and the dev
// server's), and looks in all of it for every secret of the run: each
// token's value, the app secret, the webhook verify token and every API
// key. Payloads are base64 in the CLI's JSON, so every JSON string that
// decodes as base64 is searched decoded too.
func scanSecrets(ctx context.Context, sys *system, o Options, res *Result) error {
	sc := newScanner(sys.secrets)
	res.SecretsChecked = len(sc.secrets)

	type exec struct{ id, run, typ string }
	var runs []exec
	var token []byte
	for {
		resp, err := sys.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: "default", PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("list workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			runs = append(runs, exec{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetType().GetName()})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if len(runs) == 0 {
		return fmt.Errorf("no workflow to export: the scan would prove nothing")
	}
	cli := func(args ...string) ([]byte, error) {
		args = append(args, "--address", sys.devHostPort, "--namespace", "default", "--output", "json")
		cmd := execCommand(ctx, o.TemporalCLI, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("temporal %s: %w: %s", strings.Join(args[:2], " "), err, stderr.String())
		}
		return out, nil
	}
	par := max(1, o.ExportParallel)
	jobs := make(chan exec)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	kept := newHistoryPicker(o.RecordHistories)
	for range par {
		wg.Go(func() {
			for r := range jobs {
				out, err := cli("workflow", "show", "--workflow-id", r.id, "--run-id", r.run)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					res.Workflows++
					res.HistoryBytes += int64(len(out))
				}
				mu.Unlock()
				if err == nil {
					sc.scanJSON("history of "+r.id+" run "+r.run, out)
					kept.offer(r.typ, out)
				}
			}
		})
	}
	for _, r := range runs {
		if ctx.Err() != nil {
			break
		}
		jobs <- r
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := kept.write(); err != nil {
		return err
	}
	for _, id := range []string{"verification-dispatcher", "evidence-purge"} {
		out, err := cli("schedule", "describe", "--schedule-id", id)
		if err != nil {
			return err
		}
		sc.scanJSON("schedule "+id, out)
	}

	// Every log file of the run.
	err := filepath.WalkDir(filepath.Join(sys.dir, "logs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		res.LogFiles++
		res.LogBytes += int64(len(data))
		sc.scanLog(filepath.Base(path), data)
		return nil
	})
	if err != nil {
		return err
	}
	if res.LogFiles == 0 {
		return fmt.Errorf("no log file to scan")
	}
	res.LeakDetails = sc.found()
	res.Leaks = len(res.LeakDetails)
	return nil
}

var execCommand = exec.CommandContext

// scanner looks for secret values in text and in base64 inside JSON.
type scanner struct {
	secrets map[string]string // value → name
	mu      sync.Mutex
	leaks   map[string]bool // "<secret name> in <where>"
}

func newScanner(secrets map[string]string) *scanner {
	s := &scanner{secrets: map[string]string{}, leaks: map[string]bool{}}
	for name, v := range secrets {
		if len(v) >= 8 { // shorter values would match by chance
			s.secrets[v] = name
		}
	}
	return s
}

func (s *scanner) scanBytes(where string, data []byte) {
	for v, name := range s.secrets {
		if bytes.Contains(data, []byte(v)) {
			s.mu.Lock()
			s.leaks[name+" in "+where] = true
			s.mu.Unlock()
		}
	}
}

// scanJSON scans a JSON document as text, then every string in it that
// decodes as base64 (payload data, metadata) decoded.
func (s *scanner) scanJSON(where string, data []byte) {
	s.scanBytes(where, data)
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return
	}
	s.walk(where, doc)
}

func (s *scanner) walk(where string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			s.walk(where, e)
		}
	case []any:
		for _, e := range x {
			s.walk(where, e)
		}
	case string:
		if len(x) >= 12 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				if dec, err := enc.DecodeString(x); err == nil {
					s.scanBytes(where+" (base64-decoded)", dec)
					// A payload is often JSON holding base64 again.
					if len(dec) > 0 && (dec[0] == '{' || dec[0] == '[' || dec[0] == '"') {
						var inner any
						if json.Unmarshal(dec, &inner) == nil {
							s.walk(where, inner)
						}
					}
					break
				}
			}
		}
	}
}

// scanLog scans a log file as text, and each JSON line (zap) as JSON.
func (s *scanner) scanLog(where string, data []byte) {
	s.scanBytes(where, data)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[0] == '{' {
			var doc any
			if json.Unmarshal(line, &doc) == nil {
				s.walk(where, doc)
			}
		}
	}
}

func (s *scanner) found() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.leaks))
	for k := range s.leaks {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// historyPicker keeps, per workflow type, the history that saw the most
// faults (timed-out and failed tasks), for the replay tests: histories made
// under faults are the ones most likely to hold a command sequence replay
// has not met. Histories over maxKeptHistory are passed over (testdata).
type historyPicker struct {
	dir  string
	mu   sync.Mutex
	best map[string]pickedHistory
}

type pickedHistory struct {
	faults int
	data   []byte
}

const maxKeptHistory = 1 << 20

func newHistoryPicker(dir string) *historyPicker {
	return &historyPicker{dir: dir, best: map[string]pickedHistory{}}
}

var faultEvents = []string{"TIMED_OUT", "TASK_FAILED", "ACTIVITY_TASK_CANCELED"}

func (p *historyPicker) offer(workflowType string, data []byte) {
	if p.dir == "" || workflowType == "" || len(data) > maxKeptHistory {
		return
	}
	faults := 0
	for _, ev := range faultEvents {
		faults += bytes.Count(data, []byte(ev))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.best[workflowType]; !ok || faults > cur.faults || (faults == cur.faults && len(data) > len(cur.data)) {
		p.best[workflowType] = pickedHistory{faults: faults, data: data}
	}
}

// write saves each kept history as chaos_<type>.json in the picker's folder.
func (p *historyPicker) write() error {
	if p.dir == "" {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	for typ, h := range p.best {
		if err := os.WriteFile(filepath.Join(p.dir, "chaos_"+strings.ToLower(typ)+".json"), h.data, 0o644); err != nil {
			return fmt.Errorf("record history: %w", err)
		}
	}
	return nil
}

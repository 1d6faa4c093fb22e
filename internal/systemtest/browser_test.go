package systemtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// The operator's view, in a real browser: the engine runs with payload
// encryption on against the dev server with its Web UI, whose codec
// endpoint is the worker's codec server (the platform API's /codec). Headless
// Chromium opens the workflow list filtered by the TenantID search attribute
// and sees that tenant's batches and no other tenant's, then opens a batch
// and sees its input and result decoded, which the server holds only
// sealed; with the codec server down, the same page shows sealed payloads.
// The screenshots are kept in out/browser for people to look at.
func TestBrowserShowsBatchesByTenantDecodedThroughTheCodec(t *testing.T) {
	chrome := chromium(t)
	ctx := context.Background()
	keys, err := codec.New(codec.Key{ID: "ui-k1", Secret: bytes.Repeat([]byte{5}, codec.KeySize)})
	if err != nil {
		t.Fatal(err)
	}

	// The codec server's address comes first: the UI starts pointing at it;
	// it serves once the UI's origin, which it lets call it, is known.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	plain, addr, uiURL := testenv.DevServerWithUI(t, "http://"+ln.Addr().String()+"/codec")

	const appSecret = "browser-test-secret"
	sim := metasim.New(metasim.Config{Seed: 11, Brands: 3, Premium: 1, Speed: systemtest.Speed, AppSecret: appSecret,
		PlatformBudget: metasim.Budget{Calls: 100_000, Window: time.Hour},
		TenantBudget:   metasim.Budget{Calls: 100_000, Window: time.Hour}})
	graphSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(graphSrv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)

	// The worker's API address, serving the codec as the worker main does;
	// the test counts the UI's calls, and can take the codec server away.
	var decodes atomic.Int64
	var codecDown atomic.Bool
	codecServer := keys.Handler(uiURL)
	apiSrv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: (&api.Server{Store: st, Codec: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/decode") {
			decodes.Add(1)
			if codecDown.Load() {
				w.Header().Set("Access-Control-Allow-Origin", uiURL)
				http.Error(w, "codec server down", http.StatusServiceUnavailable)
				return
			}
		}
		codecServer.ServeHTTP(w, r)
	})}).Handler()}
	go func() { _ = apiSrv.Serve(ln) }()
	t.Cleanup(func() { _ = apiSrv.Close() })

	sealed, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", DataConverter: keys.DataConverter(), Logger: logging.Temporal(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sealed.Close)
	cfg := config.Default()
	cfg.Speed = systemtest.Speed
	systemtest.StartEngine(t, sealed, cfg, st, sim, graphSrv.URL, appSecret, tenants.PlatformToken, nil)
	schedule := sealed.ScheduleClient().GetHandle(ctx, workflows.ScheduleID)

	w := &systemtest.World{Sim: sim, C: sealed, Addr: addr, St: st, Cfg: cfg, Tenants: tenants}
	standard := w.TenantsBy(store.TierStandard)
	shown, hidden := standard[0], standard[1]
	// Two rounds of claims: two batches per tenant.
	for range 2 {
		w.Submit(t, w.Generate(t, 16, 0.1, shown, hidden))
		w.WaitDecided(t, time.Minute)
	}
	// No more dispatches: the list stays as the browser will see it.
	if err := schedule.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	batches := map[string][]*workflowRef{}
	for _, tn := range []string{shown, hidden} {
		query := fmt.Sprintf("WorkflowType = '%s' AND TenantID = '%s'", workflows.TenantBatchWorkflow, tn)
		testenv.Eventually(t, 30*time.Second, 300*time.Millisecond, "closed batches of "+tn+" in visibility", func() (bool, string) {
			resp, err := plain.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
			if err != nil {
				return false, err.Error()
			}
			batches[tn] = nil
			for _, e := range resp.Executions {
				if e.Status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
					return false, e.Execution.WorkflowId + " running"
				}
				batches[tn] = append(batches[tn], &workflowRef{id: e.Execution.WorkflowId, runID: e.Execution.RunId})
			}
			return len(batches[tn]) >= 2, fmt.Sprintf("%d batches", len(batches[tn]))
		})
	}
	t.Logf("batches: %s %v, %s %v", shown, batches[shown], hidden, batches[hidden])

	dir := filepath.Join(testenv.RepoRoot(t), "out", "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The list, filtered by tenant as an operator types it.
	listURL := uiURL + "/namespaces/default/workflows?query=" + url.QueryEscape(fmt.Sprintf(`TenantID="%s"`, shown))
	listShot := filepath.Join(dir, "workflows-filtered-by-tenant.png")
	text := browse(t, chrome, listURL, listShot)
	for _, b := range batches[shown] {
		if !strings.Contains(text, b.id) {
			t.Errorf("the list filtered by %s does not show its batch %s", shown, b.id)
		}
	}
	for _, b := range batches[hidden] {
		if strings.Contains(text, b.id) {
			t.Errorf("the list filtered by %s shows %s's batch %s", shown, hidden, b.id)
		}
	}
	if strings.Contains(text, "batch/"+hidden+"/") {
		t.Errorf("the list filtered by %s shows a batch of %s", shown, hidden)
	}
	checkScreenshot(t, listShot)

	// A batch's history: its input and result, sealed on the server (see
	// TestPayloadsAreEncryptedOnTheServer), decoded by the codec server the
	// browser calls; without it, the page shows only the sealed payloads.
	b := batches[shown][0]
	ev, err := plain.GetWorkflowHistory(ctx, b.id, b.runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT).Next()
	if err != nil {
		t.Fatal(err)
	}
	if p := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]; string(p.GetMetadata()["encoding"]) != codec.Encoding ||
		bytes.Contains(p.GetData(), []byte(shown)) {
		t.Fatalf("the server holds %s's input in clear: %s", b.id, p)
	}
	decoded := []string{
		fmt.Sprintf(`"TenantID": "%s",`, shown), `"ClaimIDs": [`, // the input
		`"Phase": "done",`, // the result
	}
	detailURL := uiURL + "/namespaces/default/workflows/" + url.PathEscape(b.id) + "/" + b.runID + "/history"
	detailShot := filepath.Join(dir, "batch-input-decoded.png")
	before := decodes.Load()
	text = browse(t, chrome, detailURL, detailShot)
	if n := decodes.Load() - before; n == 0 {
		t.Error("the UI did not call the codec server")
	} else {
		t.Logf("the UI called the codec server's /decode %d times", n)
	}
	for _, want := range decoded {
		if !strings.Contains(text, want) {
			t.Errorf("the batch's page does not show %s: the codec server did not decode for the UI", want)
		}
	}
	// Undecoded, the UI shows a payload's metadata in base64.
	sealedMark := fmt.Sprintf(`"encoding": "%s"`, base64.StdEncoding.EncodeToString([]byte(codec.Encoding)))
	if strings.Contains(text, sealedMark) {
		t.Errorf("the batch's page shows sealed payloads (%s) with the codec server up", sealedMark)
	}
	checkScreenshot(t, detailShot)

	codecDown.Store(true)
	sealedShot := filepath.Join(dir, "batch-input-without-codec.png")
	text = browse(t, chrome, detailURL, sealedShot)
	for _, leak := range decoded {
		if strings.Contains(text, leak) {
			t.Errorf("with the codec server down, the batch's page still shows %s", leak)
		}
	}
	if !strings.Contains(text, sealedMark) {
		t.Errorf("with the codec server down, the batch's page does not show the sealed payloads (%s)", sealedMark)
	}
	checkScreenshot(t, sealedShot)
	t.Logf("screenshots: %s, %s, %s", listShot, detailShot, sealedShot)
}

type workflowRef struct{ id, runID string }

func (r *workflowRef) String() string { return r.id }

// chromium finds Chromium, installing it with apt when it is missing: the
// browser check never skips.
func chromium(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	t.Log("Chromium not found: apt-get install -y chromium")
	install := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
		return nil
	}
	if err := install("install", "-y", "chromium"); err != nil {
		t.Logf("%v; updating the package lists and trying again", err)
		if err := install("update"); err != nil {
			t.Fatal(err)
		}
		if err := install("install", "-y", "chromium"); err != nil {
			t.Fatal(err)
		}
	}
	if p := find(); p != "" {
		return p
	}
	t.Fatal("apt-get installed chromium, but neither chromium nor chromium-browser is on PATH")
	return ""
}

var tags = regexp.MustCompile(`(?s)<[^>]*>`)

// browse opens u in headless Chromium, saves a screenshot of it to shot and
// returns the text of the rendered page (tags removed, entities decoded).
func browse(t *testing.T, chrome, u, shot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = os.Remove(shot)
	cmd := exec.CommandContext(ctx, chrome,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=15000", "--window-size=1600,1000",
		"--screenshot="+shot, "--dump-dom", u)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", u, err, tail(stderr.Bytes(), 3000))
	}
	t.Logf("chromium rendered %s in %v (%d bytes of DOM)", u, time.Since(start).Round(time.Millisecond), stdout.Len())
	if os.Getenv("BROWSER_TEST_KEEP_DOM") != "" {
		_ = os.WriteFile(strings.TrimSuffix(shot, ".png")+".html", stdout.Bytes(), 0o644)
	}
	return html.UnescapeString(tags.ReplaceAllString(stdout.String(), ""))
}

// checkScreenshot checks that shot is a PNG of the window's size with
// something drawn on it: not one flat color.
func checkScreenshot(t *testing.T, shot string) {
	t.Helper()
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	info, _ := f.Stat()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != 1600 || b.Dy() != 1000 {
		t.Errorf("screenshot %s is %dx%d, want 1600x1000", shot, b.Dx(), b.Dy())
	}
	if colors := distinctColors(img); info.Size() < 20<<10 || colors < 16 {
		t.Errorf("screenshot %s looks empty: %d bytes, %d colors", shot, info.Size(), colors)
	}
}

func distinctColors(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

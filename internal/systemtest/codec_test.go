package systemtest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// With payload encryption on, the Temporal server stores only sealed
// payloads: a client without the keys reads ciphertext where the input was,
// while the worker and a client with the keys work as usual.
func TestPayloadsAreEncryptedOnTheServer(t *testing.T) {
	plain, addr := testenv.DevServerAt(t)
	keys, err := codec.New(codec.Key{ID: "k1", Secret: bytes.Repeat([]byte{9}, codec.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", DataConverter: keys.DataConverter()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sealed.Close)
	systemtest.StartWorker(t, sealed, engine.Deps{})

	ctx := context.Background()
	in := governor.Start{Mode: governor.ModeVerify, Speed: 37}
	run, err := sealed.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "codec-check", TaskQueue: workflows.TaskQueue}, governor.WorkflowType, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealed.TerminateWorkflow(ctx, "codec-check", "", "test over") })
	var view governor.View
	testenv.Eventually(t, 30*time.Second, 200*time.Millisecond, "the Governor answers through the codec", func() (bool, string) {
		v, err := sealed.QueryWorkflow(ctx, "codec-check", run.GetRunID(), governor.QueryState)
		if err != nil {
			return false, err.Error()
		}
		return v.Get(&view) == nil && view.Mode == governor.ModeVerify, string(view.Mode)
	})

	it := plain.GetWorkflowHistory(ctx, "codec-check", run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	input := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) != 1 {
		t.Fatalf("input payloads: %v", input)
	}
	if enc := string(input[0].GetMetadata()["encoding"]); enc != codec.Encoding || bytes.Contains(input[0].GetData(), []byte(`"Speed"`)) {
		t.Fatalf("the server holds the input in clear: encoding %q, data %q", enc, input[0].GetData())
	}
	var back governor.Start
	if err := keys.DataConverter().FromPayload(input[0], &back); err != nil || back.Speed != 37 {
		t.Fatalf("the keys open the stored input: %+v, %v", back, err)
	}
}

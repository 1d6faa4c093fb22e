package secret_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/secret"
)

func TestValueNeverPrints(t *testing.T) {
	v := secret.New("EAABsupersecret")
	type wrapper struct {
		Token secret.Value
	}
	js, _ := json.Marshal(wrapper{v})
	outputs := []string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q %x", v, v, v, v, v, v),
		fmt.Sprintf("%+v", wrapper{v}), string(js),
	}
	for _, out := range outputs {
		if strings.Contains(out, "supersecret") {
			t.Fatalf("secret leaked: %s", out)
		}
	}
	if v.Reveal() != "EAABsupersecret" {
		t.Fatal("Reveal lost the value")
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("filetoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SECRET_TOKEN", "envtoken")
	tests := []struct {
		ref, want, errHas string
	}{
		{ref: "env:TEST_SECRET_TOKEN", want: "envtoken"},
		{ref: "file:" + file, want: "filetoken"},
		{ref: "env:TEST_SECRET_UNSET_XYZ", errHas: "not set"},
		{ref: "file:" + filepath.Join(dir, "missing"), errHas: "no such file"},
		{ref: "EAABrawvalue", errHas: "must be"},
		{ref: "env:", errHas: "must be"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			v, err := secret.Resolve(tt.ref)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want containing %q", err, tt.errHas)
				}
				if strings.Contains(err.Error(), "EAABrawvalue") {
					t.Fatal("error echoes a raw value")
				}
				return
			}
			if err != nil || v.Reveal() != tt.want {
				t.Fatalf("got %q, %v", v.Reveal(), err)
			}
		})
	}
}

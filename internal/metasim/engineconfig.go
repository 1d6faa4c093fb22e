package metasim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

type engineConfig struct {
	PlatformToken string         `json:"platform_token"`
	Tokens        []engineToken  `json:"tokens"`
	Tenants       []engineTenant `json:"tenants"`
}

type engineToken struct {
	ID       string   `json:"id"`
	Accounts []string `json:"accounts"`
	Budget   Budget   `json:"budget"`
	Secret   string   `json:"secret"`
}

type engineTenant struct {
	ID       string          `json:"id"`
	Tier     string          `json:"tier"`
	Token    string          `json:"token"`
	Accounts []engineAccount `json:"accounts"`
}

type engineAccount struct {
	ID   string `json:"id"`
	Type string `json:"type"` // "instagram" or "page"
}

// WriteEngineConfig writes the world in the engine's config format to path.
// Each token's value goes to <secretsDir>/<token-id> and the app secret (when
// set) to <secretsDir>/app_secret, files 0600 in a 0700 directory; the config
// refers to them as "file:<absolute path>" and holds no secret itself.
// A token's accounts are those it can read now.
func (s *Sim) WriteEngineConfig(path, secretsDir string) error {
	dir, err := filepath.Abs(secretsDir)
	if err != nil {
		return fmt.Errorf("metasim: secrets dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("metasim: secrets dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("metasim: secrets dir: %w", err)
	}
	w := s.World()
	cfg := engineConfig{PlatformToken: "platform", Tokens: []engineToken{}, Tenants: []engineTenant{}}
	for _, t := range w.Tokens {
		file := filepath.Join(dir, t.ID)
		if err := writeFileAtomic(file, []byte(t.Value), 0o600); err != nil {
			return err
		}
		cfg.Tokens = append(cfg.Tokens, engineToken{ID: t.ID, Accounts: t.Accounts, Budget: t.Budget, Secret: "file:" + file})
	}
	if w.AppSecret != "" {
		if err := writeFileAtomic(filepath.Join(dir, "app_secret"), []byte(w.AppSecret), 0o600); err != nil {
			return err
		}
	}
	for _, b := range w.Brands {
		cfg.Tenants = append(cfg.Tenants, engineTenant{
			ID: b.Tenant, Tier: b.Tier, Token: b.TokenID,
			Accounts: []engineAccount{{ID: b.IGUserID, Type: "instagram"}, {ID: b.PageID, Type: "page"}},
		})
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if d := filepath.Dir(path); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("metasim: config dir: %w", err)
		}
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("metasim: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("metasim: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("metasim: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("metasim: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("metasim: write %s: %w", path, err)
	}
	return nil
}

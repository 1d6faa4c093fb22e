package graph

import (
	"sort"
	"time"

	facebook "github.com/huandu/facebook/v2"
)

// Usage is what Meta reported about a token's rate limits on one response,
// in whole percent of the limit (throttling starts at 100).
type Usage struct {
	App *Percent     `json:"app,omitempty"` // X-App-Usage
	BUC []BUCPercent `json:"buc,omitempty"` // X-Business-Use-Case-Usage, one per business and type
}

// Percent is one usage reading.
type Percent struct {
	CallCount    int `json:"call_count"`
	TotalCPUTime int `json:"total_cputime"`
	TotalTime    int `json:"total_time"`
}

// Max is the largest of the three figures: Meta throttles on whichever reaches 100.
func (p Percent) Max() int { return max(p.CallCount, p.TotalCPUTime, p.TotalTime) }

// BUCPercent is one Business Use Case reading.
type BUCPercent struct {
	Business string `json:"business"`
	Type     string `json:"type"`
	Percent
	RegainMinutes int `json:"estimated_time_to_regain_access"`
}

// Known reports whether Meta sent any usage header.
func (u Usage) Known() bool { return u.App != nil || len(u.BUC) > 0 }

// MaxPercent is the highest usage figure across headers.
func (u Usage) MaxPercent() int {
	m := 0
	if u.App != nil {
		m = u.App.Max()
	}
	for _, b := range u.BUC {
		m = max(m, b.Max())
	}
	return m
}

// maxRegain bounds estimated_time_to_regain_access: Meta's longest window
// is a day, and a larger (or overflowing) figure must not wrap around.
const maxRegain = 24 * time.Hour

// RegainAfter is the longest estimated_time_to_regain_access (at most a
// day), or 0.
func (u Usage) RegainAfter() time.Duration {
	m := 0
	for _, b := range u.BUC {
		m = max(m, b.RegainMinutes)
	}
	if m <= 0 {
		return 0
	}
	return min(time.Duration(min(m, int(maxRegain/time.Minute)))*time.Minute, maxRegain)
}

func usageFrom(info *facebook.UsageInfo) Usage {
	var u Usage
	if info == nil {
		return u
	}
	if a := info.App; a != (facebook.RateLimiting{}) {
		u.App = &Percent{CallCount: a.CallCount, TotalCPUTime: a.TotalCPUTime, TotalTime: a.TotalTime}
	}
	businesses := make([]string, 0, len(info.BusinessUseCase))
	for b := range info.BusinessUseCase {
		businesses = append(businesses, b)
	}
	sort.Strings(businesses)
	for _, b := range businesses {
		for _, r := range info.BusinessUseCase[b] {
			if r == nil {
				continue
			}
			u.BUC = append(u.BUC, BUCPercent{
				Business:      b,
				Type:          r.Type,
				Percent:       Percent{CallCount: r.CallCount, TotalCPUTime: r.TotalCPUTime, TotalTime: r.TotalTime},
				RegainMinutes: r.EstimatedTimeToRegainAccess,
			})
		}
	}
	return u
}

package main

import "testing"

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true}, // not set
		{"http://127.0.0.1:9000/meta/deauthorize", true},
		{"https://verifier.example/meta/deauthorize?key=x", true},
		{"ftp://verifier.example/deauthorize", false},
		{"/meta/deauthorize", false},
		{"http://", false},
		{"://bad", false},
	} {
		err := checkURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("checkURL(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

package client

import (
	"net/http"
	"testing"
)

// FuzzICEServersFromLinks: any Link header parses without panicking, and
// every server it yields has exactly one URL.
func FuzzICEServersFromLinks(f *testing.F) {
	f.Add(`<turn:h:3478?transport=udp>; rel="ice-server"; username="u"; credential="p"`)
	f.Add(`<a>; rel="x", <b>; rel=ice-server; credential="\"`)
	f.Fuzz(func(t *testing.T, link string) {
		for _, s := range ICEServersFromLinks(http.Header{"Link": {link}}) {
			if len(s.URLs) != 1 {
				t.Fatalf("servers %v", s)
			}
		}
	})
}

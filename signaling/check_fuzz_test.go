package signaling

import (
	"errors"
	"testing"
)

// FuzzCheckReport drives report bodies through the decode and validate
// steps of POST /api/check/report: it never panics, a refusal is a 400,
// and an accepted report has only the known results, so /metrics gets
// no label value a client made up.
func FuzzCheckReport(f *testing.F) {
	f.Add([]byte(goodCheckReport))
	f.Add([]byte(`{"role":"teacher","websocket":"ok","udp":"ok","tcp":"ok","turn":"ok","camera":"ok",` +
		`"microphone":"blocked","download_kbps":0}`))
	f.Add([]byte(`{"role":"student","udp":"ok"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var rep checkReport
		err := decodeStrict(raw, &rep)
		if err == nil {
			err = rep.validate()
		} else {
			err = errors.Join(ErrBadRequest, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		for _, tr := range rep.tests() {
			if !checkResults[tr[1]] {
				t.Fatalf("accepted result %q for %s", tr[1], tr[0])
			}
		}
		switch rep.verdict() {
		case "udp", "tcp", "turn", "none":
		default:
			t.Fatalf("verdict %q", rep.verdict())
		}
		if rep.DownloadKbps < 0 || rep.DownloadKbps > maxCheckKbps {
			t.Fatalf("accepted rate %d", rep.DownloadKbps)
		}
	})
}

// FuzzCheckDownloadSize: ?bytes= is refused with a 400 or gives a size
// within the bound.
func FuzzCheckDownloadSize(f *testing.F) {
	for _, s := range []string{"", "1", "8388608", "8388609", "0", "-1", "1e6", "+5", " 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		n, err := checkDownloadSize(q)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		if n < 1 || n > maxCheckDownload {
			t.Fatalf("size %d from %q", n, q)
		}
	})
}

package signaling

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStatsMessage: a stats report decodes with every figure; a missing,
// negative, fractional or out-of-range figure, a bad stream id or an
// unknown field is a bad request, never a panic.
func TestStatsMessage(t *testing.T) {
	t.Parallel()
	req, err := decodeRequest([]byte(`{"type":"stats","data":{"stream":"s1","frames_decoded":300,"freezes":1,"jitter_buffer_ms":42.5}}`))
	require.NoError(t, err)
	d := req.Data.(*statsData)
	require.Equal(t, uint64(300), *d.FramesDecoded)
	require.Equal(t, 42.5, *d.JitterBufferMs)

	for _, data := range []string{
		`{"stream":"s1","freezes":0,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":-1,"freezes":0,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":1.5,"freezes":0,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":20000000000,"freezes":0,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":1,"freezes":99999999,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":1,"freezes":0,"jitter_buffer_ms":-3}`,
		`{"stream":"s1","frames_decoded":1,"freezes":0,"jitter_buffer_ms":1e300}`,
		`{"stream":"","frames_decoded":1,"freezes":0,"jitter_buffer_ms":0}`,
		`{"stream":"s1","frames_decoded":1,"freezes":0,"jitter_buffer_ms":0,"extra":1}`,
		`"text"`,
	} {
		_, err := decodeRequest([]byte(`{"type":"stats","data":` + data + `}`))
		require.True(t, errors.Is(err, ErrBadRequest), "%s: %v", data, err)
	}
}

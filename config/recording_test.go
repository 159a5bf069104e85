package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecordingSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want Recording
	}{
		{"defaults", nil, nil, Recording{}},
		{"flags", []string{"--record", "--recording-retention", "30d", "--recording-link-ttl", "15m"}, nil,
			Recording{Record: true, RecordingRetention: Retention(30 * 24 * time.Hour), RecordingLinkTTL: 15 * time.Minute}},
		{"env", nil, []string{"LECTERN_RECORD=true", "LECTERN_RECORDING_RETENTION=36h"},
			Recording{Record: true, RecordingRetention: Retention(36 * time.Hour)}},
		{"flag over env", []string{"--record=false"}, []string{"LECTERN_RECORD=1"}, Recording{}},
		{"yaml", []string{"--config", writeFile(t, "record: true\nrecording_retention: 7d\nrecording_link_ttl: 1h\n")}, nil,
			Recording{Record: true, RecordingRetention: Retention(7 * 24 * time.Hour), RecordingLinkTTL: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, EnvList(tt.env))
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Recording)
		})
	}
}

func TestRecordingErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--recording-retention", "30x"},
		{"--recording-retention", "-1h"},
		{"--recording-link-ttl", "-1s"},
		{"--recording-link-ttl", "200h"},
		{"--config", writeFile(t, "recording_retention: soon\n")},
	} {
		_, err := Load(args, nil)
		require.Error(t, err, "%v", args)
	}
}

func TestRetentionString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"30d": "30d", "0": "0", "36h": "36h0m0s", "48h": "2d"} {
		r, err := ParseRetention(in)
		require.NoError(t, err)
		require.Equal(t, want, r.String())
	}
	require.Equal(t, 2*time.Hour, Recording{}.LinkTTL())
}

// Package recording writes a class to disk: each recorded stream (the
// teacher's camera with microphone, or the screen share) becomes one
// WebM file (Matroska when the video is H.264), playable in Chromium and
// readable by ffmpeg, described in a Catalog that survives restarts.
//
// A Recorder is one more sfu.Sink of the stream's tracks. Deliver only
// retains the packet and tries to queue it; a full queue (a stalled disk)
// drops and counts, so recording never slows forwarding. One writer
// goroutine per recorder does the rest: a jitter buffer (pion's sample
// builder) that reorders packets and drops incomplete frames, a clock per
// track mapping RTP timestamps to wall-clock time (RTCP sender reports
// align audio and video, RFC 3550 6.4.1; arrival times are the fallback),
// an interleaver that hands frames to the muxer in time order, and the
// muxer (ebml-go's block writer) that writes SimpleBlocks in clusters
// started at each video key frame and at least once per ClusterInterval.
//
// Crash safety: Segment and Clusters have unknown sizes, so any prefix of
// the file is readable; the file is put on disk and its Duration updated
// once per cluster interval, so a kill -9 loses about that much. A clean
// Stop writes Cues and the final Duration; Repair (via Catalog.Recover at
// the next start) does the same for a file whose writer died.
//
// Goroutines: the writer (started by New, ends after Stop or a write
// error) and, while a file is open, ebml-go's muxing goroutine.
// Lock order: Recorder.mu -> sfu Track.mu; muxFile.mu and Catalog.mu are
// leaves; no lock is held while calling OnError.
package recording

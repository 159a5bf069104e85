// Package bench is `lectern bench`, Lectern's load tool: it tells an
// operator how many students a node holds.
//
// A run publishes a VP8 720p clip with Opus audio through WHIP as the
// teacher, in real time, and has N students join at a set rate through
// WHEP (or the classroom protocol), stay for a set duration, and leave.
// It reports, per run: students connected; join time to the first packet
// and to the first keyframe; received bitrate; loss; forwarding latency;
// and, when the server is a process on this machine, its CPU per
// student-second and per delivered packet and its memory per student,
// next to the tool's own CPU. --sweep raises N step by step until a step
// no longer holds (loss over 1%, p99 latency over 200 ms, or a student
// that could not connect).
//
// By default the server is `lectern serve` started as a child process on
// 127.0.0.1 with a fresh secret, so /proc/<pid> gives its CPU and memory
// apart from the tool's. With --url any WHIP/WHEP server can be measured.
//
// Forwarding latency needs no clock synchronisation: the publisher and the
// students share this process's clock, and the SFU forwards payloads
// untouched, so each video packet is matched by a hash of its payload
// (latency.go).
//
// Goroutines of a run: the publisher's pump per track and RTCP reader per
// sender; per student, pion's goroutines and one reader per received
// track; the join scheduler and a bounded pool of join and leave
// goroutines; the sampler (one tick a second). All end before Run returns.
//
// Locks are leaves: sendShard.mu (publisher put, students get),
// student.mu (its track readers), readers.mu (pion's OnTrack and leave),
// tail.mu (the child's stderr). None is held while taking another, or
// while calling into pion or the network.
package bench

package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Transports the students can use.
const (
	// TransportWHEP: one WHEP session per student (POST /whep/{room}).
	TransportWHEP = "whep"
	// TransportWS: one classroom-protocol connection per student (GET /ws).
	TransportWS = "ws"
)

// Ways the publisher can publish.
const (
	// PublishWHIP: POST /whip/{room} with the teacher's token.
	PublishWHIP = "whip"
	// PublishWS: the classroom protocol's publish message.
	PublishWS = "ws"
)

// Sweep criteria (the issue's): a step holds when every student connected,
// loss is at most 1% and p99 forwarding latency at most 200 ms.
const (
	SweepMaxLoss     = 0.01
	SweepMaxP99Milli = 200.0
)

// Options configure a run or a sweep. DefaultOptions gives the defaults.
type Options struct {
	// URL is the server to measure; empty starts a local one.
	URL string
	// Students is how many viewers join.
	Students int
	// JoinRate is how many students start joining per second.
	JoinRate float64
	// Duration is how long every student stays after the last has
	// joined; figures other than join times come from this period.
	Duration time.Duration
	// Transport is TransportWHEP or TransportWS.
	Transport string
	// Publisher is PublishWHIP or PublishWS.
	Publisher string
	// Room is the class the run uses (a sweep appends "-N").
	Room string

	// Sweep raises Students from SweepStart by SweepStep up to SweepMax,
	// until a step does not hold.
	Sweep                           bool
	SweepStart, SweepStep, SweepMax int

	// JSON and HTML name report files to write ("": none).
	JSON, HTML string

	// TeacherToken and StudentToken are tokens for a server at URL; every
	// student uses the same StudentToken (WHEP only). Otherwise tokens are
	// minted with the secret in SecretFile, or in Data/secret.
	TeacherToken, StudentToken string
	SecretFile, Data           string
	// ServerPID is a process on this machine whose CPU and memory to
	// report when URL names a server the tool did not start.
	ServerPID int

	// IVF and Ogg are the clip (VP8 IVF, Ogg Opus; Ogg "" sends no audio).
	IVF, Ogg string

	// ServerBinary is the lectern binary run as the local server
	// (default: this executable). ServerArgs are extra `serve` flags.
	ServerBinary string
	ServerArgs   []string
	// InProcess runs the local server inside the tool (for CPU profiles:
	// server figures are then not separable and not reported).
	InProcess bool
	// CPUProfile writes a CPU profile of the tool to this file;
	// MemProfile a heap profile taken at the end of the measured period.
	CPUProfile, MemProfile string

	// Warmup is how long the publisher sends before the first student.
	// It is 0 by default: students start joining as the teacher goes
	// live, inside the first keyframe interval, which is when a class's
	// students pile in.
	Warmup time.Duration
	// JoinTimeout bounds one student's join.
	JoinTimeout time.Duration

	// Logger receives warnings.
	Logger zerolog.Logger
}

// DefaultOptions returns the defaults of `lectern bench`.
func DefaultOptions() Options {
	return Options{
		Students: 10, JoinRate: 10, Duration: 30 * time.Second,
		Transport: TransportWHEP, Publisher: PublishWHIP, Room: "bench",
		SweepStart: 50, SweepStep: 50, SweepMax: 1000,
		IVF: DefaultIVF, Ogg: DefaultOgg,
		Warmup: 0, JoinTimeout: 20 * time.Second,
		Logger: zerolog.Nop(),
	}
}

// maxStudents bounds one run: each student is a peer connection in this
// process.
const maxStudents = 5000

// Validate checks every option and reports all problems at once.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...))
	}
	if o.Students < 1 || o.Students > maxStudents {
		bad("--students %d: want 1 to %d", o.Students, maxStudents)
	}
	if o.JoinRate <= 0 || o.JoinRate > 10000 {
		bad("--join-rate %v: want more than 0 and at most 10000 a second", o.JoinRate)
	}
	if o.Duration < time.Second || o.Duration > 24*time.Hour {
		bad("--duration %v: want 1s to 24h", o.Duration)
	}
	if o.Transport != TransportWHEP && o.Transport != TransportWS {
		bad("--transport %q: want whep or ws", o.Transport)
	}
	if o.Publisher != PublishWHIP && o.Publisher != PublishWS {
		bad("--publisher %q: want whip or ws", o.Publisher)
	}
	if o.Room == "" || len(o.Room) > 64 {
		bad("--room %q: want 1 to 64 characters", o.Room)
	}
	if o.Sweep && (o.SweepStart < 1 || o.SweepStep < 1 || o.SweepMax < o.SweepStart || o.SweepMax > maxStudents) {
		bad("--sweep-start %d, --sweep-step %d, --sweep-max %d: want 1 <= start <= max <= %d and step >= 1",
			o.SweepStart, o.SweepStep, o.SweepMax, maxStudents)
	}
	errs = append(errs, o.validateTarget()...)
	if o.IVF == "" {
		bad("--ivf: a VP8 IVF clip is needed")
	}
	if o.Warmup < 0 || o.JoinTimeout <= 0 {
		bad("warm-up and join timeout must be positive")
	}
	return errors.Join(errs...)
}

func (o *Options) validateTarget() []error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...))
	}
	if o.URL == "" {
		if o.TeacherToken != "" || o.StudentToken != "" || o.ServerPID != 0 {
			bad("--token, --student-token and --server-pid go with --url")
		}
		return errs
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--url %q: want http(s)://host[:port]", o.URL)
	}
	if o.InProcess {
		bad("--url and the in-process server exclude each other")
	}
	if (o.TeacherToken == "") != (o.StudentToken == "") {
		bad("--token and --student-token go together")
	}
	if o.StudentToken != "" && o.Transport == TransportWS {
		bad("--transport ws needs one token per student: give --secret-file or --data instead of tokens")
	}
	if o.TeacherToken == "" && o.SecretFile == "" && o.Data == "" {
		bad("--url needs --token and --student-token, or --secret-file or --data to mint tokens")
	}
	return errs
}

// flags binds o to a flag set. Hidden flags are left out of the usage.
func (o *Options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "url", o.URL, "server to measure, e.g. https://lectern.example.org (default: start a local server)")
	fs.IntVar(&o.Students, "students", o.Students, "number of students")
	fs.Float64Var(&o.JoinRate, "join-rate", o.JoinRate, "students starting to join per second")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long all students stay once the last has joined")
	fs.StringVar(&o.Transport, "transport", o.Transport, "students' transport: whep or ws (the classroom protocol)")
	fs.StringVar(&o.Publisher, "publisher", o.Publisher, "how the teacher publishes: whip or ws")
	fs.StringVar(&o.Room, "room", o.Room, "class to use (a sweep appends -N)")
	fs.BoolVar(&o.Sweep, "sweep", o.Sweep, "raise the number of students step by step until loss passes 1% or p99 latency 200 ms")
	fs.IntVar(&o.SweepStart, "sweep-start", o.SweepStart, "first number of students of a sweep")
	fs.IntVar(&o.SweepStep, "sweep-step", o.SweepStep, "students added at each step of a sweep")
	fs.IntVar(&o.SweepMax, "sweep-max", o.SweepMax, "largest number of students a sweep tries")
	fs.StringVar(&o.JSON, "json", o.JSON, "write the report as JSON to this file")
	fs.StringVar(&o.HTML, "html", o.HTML, "write the report as HTML with charts to this file")
	fs.StringVar(&o.TeacherToken, "token", o.TeacherToken, "teacher token for --url (with --student-token)")
	fs.StringVar(&o.StudentToken, "student-token", o.StudentToken, "student token for --url, shared by every student (WHEP; a Lectern server must allow as many sessions per token: --whep-sessions-per-token)")
	fs.StringVar(&o.SecretFile, "secret-file", o.SecretFile, "file holding the server's token secret, to mint tokens for --url")
	fs.StringVar(&o.Data, "data", o.Data, "the server's data directory, whose secret file mints tokens for --url")
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "with --url: a process on this machine whose CPU and memory to report")
	fs.StringVar(&o.IVF, "ivf", o.IVF, "VP8 clip (IVF) to publish")
	fs.StringVar(&o.Ogg, "ogg", o.Ogg, `Opus clip (Ogg, one packet per page) to publish; "" for no audio`)
	fs.StringVar(&o.ServerBinary, "server-bin", o.ServerBinary, "lectern binary to run as the local server (default: this one)")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "how long the teacher publishes before the first student joins (0: students join as the teacher goes live)")
	fs.DurationVar(&o.JoinTimeout, "join-timeout", o.JoinTimeout, "how long one student may take to join")
	fs.Var(stringList{&o.ServerArgs}, "server-arg", "extra flag for the local server (repeatable), e.g. --server-arg=--log-level=error")
	// Hidden: profiling the forwarding path.
	fs.BoolVar(&o.InProcess, "in-process", o.InProcess, "")
	fs.StringVar(&o.CPUProfile, "cpuprofile", o.CPUProfile, "")
	fs.StringVar(&o.MemProfile, "memprofile", o.MemProfile, "")
}

var hiddenFlags = map[string]bool{"in-process": true, "cpuprofile": true, "memprofile": true}

// parseFlags reads args into options, starting from the defaults.
func parseFlags(args []string, stderr io.Writer) (Options, error) {
	o := DefaultOptions()
	fs := flag.NewFlagSet("lectern bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.flags(fs)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(fs, stderr)
		return o, err
	}
	if err != nil {
		return o, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	return o, o.Validate()
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: lectern bench [flags]

Publishes a 720p VP8 clip with Opus audio through WHIP and has students
receive it through WHEP (or the classroom protocol), then reports join
times, bitrate, loss, forwarding latency and CPU and memory use.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		if hiddenFlags[f.Name] {
			return
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%s\n        %s%s\n", f.Name, f.Usage, def)
	})
}

// stringList is a repeatable string flag.
type stringList struct{ p *[]string }

func (l stringList) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, " ")
}

func (l stringList) Set(s string) error { *l.p = append(*l.p, s); return nil }

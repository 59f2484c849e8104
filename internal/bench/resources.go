package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/internal/procs"
)

// resources is scenario 6: a drain of Backlog deliveries, measured.
func (e *env) resources(ctx context.Context) (*Resources, error) {
	m := &meter{}
	tp, err := e.drain(ctx, ScenarioResources, 0, m)
	if err != nil {
		return nil, err
	}
	m.res.Drain = *tp
	return m.res, nil
}

// meter measures one drain: the process's peak RSS and CPU (webhookd runs
// in this process, with the bench's receiver and driver), and PostgreSQL's
// CPU when PostgreSQL runs on this machine.
type meter struct {
	cpu0 time.Duration
	pg   *pgSampler
	db   *pgxpool.Pool
	wal0 *walStat
	res  *Resources
}

// walStat is the server's WAL written so far: bytes from its insert
// position (exact), records and full-page images from pg_stat_wal
// (PostgreSQL 14+; each backend adds to it at most once a second, so over
// a short drain they are short). The whole server's: the bench should be
// its only load.
type walStat struct {
	bytes, records, fpi float64
}

func readWAL(ctx context.Context, db *pgxpool.Pool) (*walStat, error) {
	w := &walStat{}
	err := db.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8, wal_records::float8, wal_fpi::float8 FROM pg_stat_wal`).Scan(&w.bytes, &w.records, &w.fpi)
	if err != nil {
		return nil, fmt.Errorf("the server's WAL position or pg_stat_wal unreadable: %w", err)
	}
	return w, nil
}

// begin starts measuring. The process's peak RSS is reset (after returning
// freed memory to the OS) so it covers the drain, not the backlog insert or
// the scenarios before.
func (m *meter) begin(ctx context.Context, s *stage) error {
	m.res = &Resources{}
	runtime.GC()
	debug.FreeOSMemory()
	if err := resetPeakRSS(); err != nil {
		m.res.PeakRSSWholeRun = true
	}
	var err error
	m.pg, err = startPGSampler(ctx, s.e.baseURL, s.dbName)
	if err != nil {
		m.res.PostgresNote = err.Error()
	}
	m.db = s.pool()
	if m.wal0, err = readWAL(ctx, m.db); err != nil {
		m.res.WALNote = err.Error()
	}
	m.cpu0, err = procs.ProcessCPU()
	return err
}

// end stops measuring after a drain of deliveries.
func (m *meter) end(ctx context.Context, deliveries int) error {
	cpu1, err := procs.ProcessCPU()
	if err != nil {
		return err
	}
	m.res.CPUPerDelivery = (cpu1 - m.cpu0) / time.Duration(deliveries)
	m.res.PeakRSS, _ = peakRSS()
	if m.wal0 != nil {
		w, err := readWAL(ctx, m.db)
		if err != nil {
			return err
		}
		n := float64(deliveries)
		m.res.WAL = &walStat{records: (w.records - m.wal0.records) / n, fpi: (w.fpi - m.wal0.fpi) / n, bytes: (w.bytes - m.wal0.bytes) / n}
	}
	if m.pg != nil {
		cpu, err := m.pg.stop(ctx)
		if err != nil {
			return fmt.Errorf("error measuring PostgreSQL's CPU: %w", err)
		}
		per := cpu / time.Duration(deliveries)
		m.res.PostgresCPUPerDelivery = &per
		m.res.PostgresNote = fmt.Sprintf("%d processes: the bench database's backends, the server's background processes and its postmaster", m.pg.counted())
	}
	return nil
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux 4.0+).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's VmHWM in bytes.
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("error parsing VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// procStat is what we read from /proc/<pid>/stat.
type procStat struct {
	comm  string
	ppid  int
	cpu   uint64 // utime + stime, in ticks
	start uint64 // start time after boot, in ticks
}

func readProcStat(pid int) (*procStat, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	// comm is in parentheses and may hold spaces: split after the last ')'.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open || end+2 > len(raw) {
		return nil, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[end+2:])) // fields[0] is field 3 (state)
	if len(fields) < 20 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	num := func(i int) uint64 { n, _ := strconv.ParseUint(fields[i], 10, 64); return n }
	return &procStat{comm: string(raw[open+1 : end]), ppid: int(num(1)), cpu: num(11) + num(12), start: num(19)}, nil
}

// uptimeTicks is the time since boot in ticks.
func uptimeTicks() (uint64, error) {
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	secs, err := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if err != nil {
		return 0, err
	}
	return uint64(secs * userHZ), nil
}

// localBackend returns the pid of conn's PostgreSQL backend if it is a
// process on this machine: /proc/<pid> must be a postgres process whose
// title names our end of the connection. Otherwise it says why not.
func localBackend(ctx context.Context, conn *pgx.Conn) (int, error) {
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return 0, fmt.Errorf("error reading pg_backend_pid(): %w", err)
	}
	st, err := readProcStat(pid)
	if err != nil || st.comm != "postgres" {
		return 0, errors.New("PostgreSQL does not run on this machine")
	}
	title, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0, errors.New("PostgreSQL does not run on this machine")
	}
	want := "[local]"
	if addr, ok := conn.PgConn().Conn().LocalAddr().(*net.TCPAddr); ok {
		want = "(" + strconv.Itoa(addr.Port) + ")"
	}
	if !bytes.Contains(title, []byte(want)) {
		return 0, errors.New("PostgreSQL's backend pid is not ours on this machine (another host or pid namespace)")
	}
	return pid, nil
}

// pgSamplePeriod is how often the sampler looks at PostgreSQL's processes,
// to catch backends that come and go during the drain.
const pgSamplePeriod = 100 * time.Millisecond

// pgSampler adds up the CPU of the PostgreSQL processes that serve the bench
// database: its backends (as pg_stat_activity lists them, sampled every
// pgSamplePeriod; startBackendSampler's every quietSamplePeriod), the
// server's background processes (checkpointer, WAL writer, … shared with
// any other database on the server) and the
// postmaster. Backends of other databases — other developers' tests on a
// shared server — are left out. A process that lives less than one period
// is missed.
type pgSampler struct {
	conn   *pgx.Conn // on the base database, so it is not counted
	dbName string
	// backendsOnly leaves out the background processes and the postmaster.
	backendsOnly bool
	period       time.Duration // between samples
	postmaster   int
	since        uint64 // window start, ticks after boot

	mu    sync.Mutex
	procs map[int]*procCPU
	err   error

	stopped chan struct{}
	done    chan struct{}
}

type procCPU struct{ base, last uint64 }

func startPGSampler(ctx context.Context, baseURL, dbName string) (*pgSampler, error) {
	return startSampler(ctx, baseURL, dbName, false)
}

// startBackendSampler is a pgSampler of the bench database's backends
// alone: no background process, no postmaster (shared with every other
// database of the server), sampled every quietSamplePeriod.
func startBackendSampler(ctx context.Context, baseURL, dbName string) (*pgSampler, error) {
	return startSampler(ctx, baseURL, dbName, true)
}

// quietSamplePeriod is the backend sampler's period (scenario 9): its
// backends are the pool's, long-lived, and at pgSamplePeriod the sampler
// itself (a pg_stat_activity query and a /proc read per backend, in the
// bench process) was 5 – 17 % of the process CPU it was measured beside
// (issue 30).
const quietSamplePeriod = time.Second

func startSampler(ctx context.Context, baseURL, dbName string, backendsOnly bool) (*pgSampler, error) {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return nil, fmt.Errorf("error connecting to %s: %w", redact(baseURL), err)
	}
	pid, err := localBackend(ctx, conn)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	st, err := readProcStat(pid)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	since, err := uptimeTicks()
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	p := &pgSampler{conn: conn, dbName: dbName, backendsOnly: backendsOnly, postmaster: st.ppid, since: since, procs: map[int]*procCPU{},
		period: pgSamplePeriod, stopped: make(chan struct{}), done: make(chan struct{})}
	if backendsOnly {
		p.period = quietSamplePeriod
	}
	if err := p.sample(ctx); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	go p.loop(context.WithoutCancel(ctx))
	return p, nil
}

func (p *pgSampler) loop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.period)
	defer t.Stop()
	for {
		select {
		case <-p.stopped:
			return
		case <-t.C:
			if err := p.sample(ctx); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
		}
	}
}

func (p *pgSampler) sample(ctx context.Context) error {
	rows, err := p.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 OR (datname IS NULL AND NOT $2)", p.dbName, p.backendsOnly)
	if err != nil {
		return fmt.Errorf("error reading pg_stat_activity: %w", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("error reading pg_stat_activity: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.backendsOnly {
		pids = append(pids, int32(p.postmaster))
	}
	for _, pid := range pids {
		st, err := readProcStat(int(pid))
		if err != nil || (int(pid) != p.postmaster && st.ppid != p.postmaster) {
			continue // gone, or not of this server
		}
		rec, ok := p.procs[int(pid)]
		if !ok {
			rec = &procCPU{base: st.cpu}
			if st.start >= p.since {
				rec.base = 0 // born during the window: all its CPU counts
			}
			p.procs[int(pid)] = rec
		}
		rec.last = st.cpu
	}
	return nil
}

// stop takes a last sample and returns the CPU used since start.
func (p *pgSampler) stop(ctx context.Context) (time.Duration, error) {
	close(p.stopped)
	<-p.done
	defer p.conn.Close(context.WithoutCancel(ctx))
	if p.err != nil {
		return 0, p.err
	}
	if err := p.sample(ctx); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ticks uint64
	for _, rec := range p.procs {
		ticks += rec.last - rec.base
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// counted is how many processes the sampler saw.
func (p *pgSampler) counted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.procs)
}

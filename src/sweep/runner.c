// sweep/runner.c — the shared sweep runner: unfinished runs go to a pool of forked worker
// processes (at most `jobs` at once, dispatched in index order); children report progress
// through one pipe each; the CSV is assembled at the end, in run order, from the runs'
// own files, so it is the same for any --jobs.
//
// Bit-identity across --jobs. Each run computes with exactly ONE OpenBLAS thread, for
// every value of --jobs (1 included). Measured on this machine (OpenBLAS 0.3.21,
// pthreads, Haswell kernels): cblas_sgemm of a (5000 x 784) by (784 x 200) product
// differs in ~8% of its entries between 1 and 2 threads (up to 5e-6 absolute), and ddot
// differs too, while each thread count alone is deterministic. So a run's arithmetic may
// depend only on a fixed thread count, never on how many runs share the machine; --jobs N
// is how a sweep uses N cores. (`normsharp train --threads 1` reproduces a sweep run.)
//
// Seam for MPI (make MPI=1 defines NS_MPI): ns_sweep_run finds the pending runs, hands
// them to a dispatcher, and then assembles the CSV. The dispatcher here is the fork pool
// (dispatch_fork_pool). An MPI build replaces it by dynamic assignment over ranks: rank 0
// deals out pending indices one at a time, every rank calls execute_run for the indices
// it receives, and only rank 0 goes on to write the CSV. execute_run is the whole of one
// run's work and does not depend on where it runs.
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include "normsharp/sweep.h"
#include "mpi_sweep.h"

#define PROGRESS_INTERVAL 0.25  // seconds between two progress messages of one run
#define PLAIN_SECONDS 30.0       // seconds between two plain progress lines off a terminal

// One message from a worker to the parent. Smaller than PIPE_BUF, so written atomically.
typedef struct {
    int kind;  // MSG_STEP or MSG_ERROR
    int code;  // NS_E* code (MSG_ERROR)
    ns_progress_info info;
    char text[400];
} progress_msg;
enum { MSG_STEP = 1, MSG_ERROR = 2 };

enum { CONSOLE_NONE, CONSOLE_TTY, CONSOLE_PLAIN };
struct ns_progress {
    int fd;            // write end of this run's pipe, -1 if none
    double next_time;  // throttle: no message before this time
    int console;       // a single run (no pipe): CONSOLE_TTY draws a line, CONSOLE_PLAIN prints lines
    int drawn;         // a CONSOLE_TTY line is on the screen
    double start;
    double anchor_time, anchor_t, anchor_logl, last_eta;  // for the ETA (estimate_eta)
    long anchor_step;
    char label[96];
};

static void send_msg(int fd, const progress_msg *m) {
    if (fd < 0) return;
    const char *p = (const char *)m;
    size_t left = sizeof *m;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;  // the parent is gone; progress is best effort
        p += w;
        left -= (size_t)w;
    }
}

static void fmt_duration(char *out, size_t cap, double sec) {
    if (!(sec >= 0) || sec > 1e8) snprintf(out, cap, "?");
    else if (sec < 60) snprintf(out, cap, "%.0fs", sec);
    else if (sec < 3600) snprintf(out, cap, "%dm%02ds", (int)(sec / 60), (int)sec % 60);
    else snprintf(out, cap, "%dh%02dm", (int)(sec / 3600), (int)(sec / 60) % 60);
}

// Columns of the terminal on stderr (80 if unknown).
static int term_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 80;
}

void ns_progress_text(char *out, size_t cap, const ns_progress_info *x, int brief) {
    ns_buf b = {0};
    if (!isnan(x->time)) ns_buf_printf(&b, brief ? "t %.3g" : "t %.4g", x->time);
    else ns_buf_printf(&b, brief ? "#%ld" : "step %ld", x->step);
    ns_buf_printf(&b, brief ? " L %.3g" : " | loss %.4g", x->loss);
    if (brief && !isnan(x->time) && !isnan(x->loss_goal)) ns_buf_printf(&b, ">%.2g", x->loss_goal);  // a flow's goal
    if (!brief && !isnan(x->loss_goal)) ns_buf_printf(&b, " %s goal %.3g", x->loss <= x->loss_goal ? "<=" : ">", x->loss_goal);
    if (!isnan(x->sharpness)) ns_buf_printf(&b, brief ? " S %.3g" : " | S %.4g", x->sharpness);
    snprintf(out, cap, "%s", b.data && !b.oom ? b.data : "");
    ns_buf_free(&b);
}

// Estimated seconds left: the rates of the log-loss, of the steps and of the flow time,
// measured from an anchor point about half the run ago (recent, since the loss slows down),
// toward the goal, the step limit and the time limit; whichever is reached first. -1 if unknown.
static double estimate_eta(ns_progress *p, const ns_progress_info *x, double now) {
    double logl = x->loss > 0 && isfinite(x->loss) ? log(x->loss) : NAN;
    if (p->anchor_time == 0 || !isfinite(p->anchor_logl)) {
        p->anchor_time = now, p->anchor_step = x->step, p->anchor_t = x->time, p->anchor_logl = logl;
        return p->last_eta = -1;
    }
    double dt = now - p->anchor_time, best = INFINITY;
    if (dt < 0.5) return p->last_eta;
    double rate = (p->anchor_logl - logl) / dt;  // log-loss per second
    if (x->loss_goal > 0 && rate > 0 && isfinite(logl)) best = fmin(best, fmax(0, (logl - log(x->loss_goal)) / rate));
    double srate = (double)(x->step - p->anchor_step) / dt;
    if (x->max_steps > 0 && srate > 0) best = fmin(best, fmax(0, (double)(x->max_steps - x->step) / srate));
    double trate = (x->time - p->anchor_t) / dt;
    if (isfinite(x->max_time) && trate > 0) best = fmin(best, fmax(0, (x->max_time - x->time) / trate));
    if (dt > 2 && dt > 0.5 * (now - p->start))  // move the anchor to keep the rates recent
        p->anchor_time = now, p->anchor_step = x->step, p->anchor_t = x->time, p->anchor_logl = logl;
    p->last_eta = isfinite(best) ? best : -1;
    return p->last_eta;
}

void ns_progress_report(ns_progress *p, const ns_progress_info *x) {
    if (!p || (p->fd < 0 && p->console == CONSOLE_NONE)) return;
    double now = ns_now();
    if (p->start == 0) p->start = now;
    double left = estimate_eta(p, x, now);  // every call: its rates need the early points too
    if (now < p->next_time) return;
    if (p->console == CONSOLE_NONE) {
        p->next_time = now + PROGRESS_INTERVAL;
        progress_msg m = {.kind = MSG_STEP, .info = *x};
        m.info.eta_seconds = left;
        send_msg(p->fd, &m);
        return;
    }
    p->next_time = now + (p->console == CONSOLE_TTY ? PROGRESS_INTERVAL : PLAIN_SECONDS);
    char text[200], eta[32];
    ns_progress_text(text, sizeof text, x, 0);
    fmt_duration(eta, sizeof eta, left);
    if (p->console == CONSOLE_PLAIN) {
        fprintf(stderr, "%s | %s | %.0f s | ETA %s\n", p->label, text, now - p->start, eta);
        return;
    }
    char line[400];
    snprintf(line, sizeof line, "%s | %s | ETA %s", p->label, text, eta);
    int width = term_width();
    if ((int)strlen(line) > width - 1) line[width - 1] = 0;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->drawn = 1;
}

void ns_progress_step(ns_progress *p, long step, double loss) {
    ns_progress_info x = {.step = step, .max_steps = -1, .time = NAN, .max_time = NAN, .loss = loss, .loss_goal = NAN,
                          .sharpness = NAN};
    ns_progress_report(p, &x);
}

ns_progress *ns_progress_console(const char *label) {
    ns_progress *p = ns_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->fd = -1;
    p->console = isatty(STDERR_FILENO) ? CONSOLE_TTY : CONSOLE_PLAIN;
    p->start = ns_now();
    // off a terminal the first plain line comes after PLAIN_SECONDS: short runs stay quiet
    if (p->console == CONSOLE_PLAIN) p->next_time = p->start + PLAIN_SECONDS;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "run");
    return p;
}

void ns_progress_console_end(ns_progress *p) {
    if (p && p->drawn) fputs("\r\033[K", stderr);
    free(p);
}

// ---- one run, wherever it executes ------------------------------------------------------

static int summary_path(const char *run_dir, char *out, size_t cap) {
    return ns_path(out, cap, "%s/summary.json", run_dir);
}

static int run_finished(const char *run_dir) {
    char p[4200];
    return summary_path(run_dir, p, sizeof p) == 0 && ns_exists(p);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    if (ftw->level == 0) return 0;  // keep the run directory itself
    if (remove(path) != 0) return ns_fail(NS_EIO, "cannot remove stale file '%s': %s", path, strerror(errno));
    return 0;
}

// An unfinished run directory is redone from scratch: whatever an interrupted attempt
// left (trajectory.csv, weights/, *.tmp.<pid>) is removed first.
static int prepare_run_dir(const char *run_dir) {
    int rc = ns_mkdirs(run_dir);
    if (rc) return rc;
    rc = nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc > 0) return NS_EIO;  // ns_fail already set by remove_entry
    if (rc < 0) return ns_fail(NS_EIO, "cannot list run directory '%s': %s", run_dir, strerror(errno));
    return 0;
}

static int execute_run(const ns_sweep *s, int i, ns_progress *p) {
    const char *dir = s->run_dirs[i];
    int rc = prepare_run_dir(dir);
    if (rc) return rc;
    ns_clear_error();
    rc = s->run(s->ctx, i, dir, p);
    if (rc) return rc;
    if (!run_finished(dir))
        return ns_fail(NS_EIO, "the run returned without writing '%s/summary.json'", dir);
    return 0;
}

// ---- the parent's view of the runs ------------------------------------------------------

typedef struct {
    pid_t pid;       // 0 if the slot is free
    int run;         // run index
    int fd;          // read end of the run's pipe
    double start;
    int reported;    // a progress message has arrived
    ns_progress_info info;  // the last one
    int err_code;    // from a MSG_ERROR, 0 if none
    char err[400];
} slot;

typedef struct {
    const ns_sweep *s;
    int total, finished, skipped, failed;  // finished counts done + skipped + failed
    int diverged;                          // runs done here whose summary says "diverged"
    int first_error;                       // NS_E* of the first failed run
    int oom;                               // a finished run's status could not be read: no memory
    double started, run_seconds;           // run_seconds: sum over runs done here
    int runs_timed;
    int tty, quiet, line_shown;
} tally;

static void label_of(const ns_sweep *s, int i, char *out, size_t cap) {
    if (s->label) s->label(s->ctx, i, out, cap);
    else snprintf(out, cap, "run %d", i);
}

static void clear_line(tally *t) {
    if (t->tty && t->line_shown) {
        fputs("\r\033[K", stderr);
        t->line_shown = 0;
    }
}

// The single updating line, at most as wide as the terminal (80 columns hold two runs):
// runs done/total, each running run's short label and progress ("#step L loss S sharpness",
// or "t time ..." for a flow), the ETA: the mean seconds of the runs done so far times what
// is left, shared among the workers; before any run is done, the running runs' own estimates.
static void draw_line(tally *t, const slot *slots, int nslots, int pending_left, int jobs) {
    if (!t->tty || t->quiet) return;
    int width = term_width();
    ns_buf b = {0};
    ns_buf_printf(&b, "%s", t->s->name ? t->s->name : "sweep");
    if (t->total > 1) ns_buf_printf(&b, " %d/%d", t->finished, t->total);
    if (t->failed) ns_buf_printf(&b, " (%d failed)", t->failed);
    if (t->diverged) ns_buf_printf(&b, " (%d diverged)", t->diverged);
    double now = ns_now(), left = 0, own = 0;
    double mean = t->runs_timed ? t->run_seconds / t->runs_timed : -1;
    int own_known = 1, running = 0;
    for (int k = 0; k < nslots; k++) running += slots[k].pid != 0;
    for (int k = 0; k < nslots; k++) {
        if (!slots[k].pid) continue;
        char lab[96], text[128];
        if (t->s->short_label) t->s->short_label(t->s->ctx, slots[k].run, lab, sizeof lab);
        else label_of(t->s, slots[k].run, lab, sizeof lab);
        double elapsed = now - slots[k].start;
        if (slots[k].reported) {
            ns_progress_text(text, sizeof text, &slots[k].info, running > 1);  // words when alone
            ns_buf_printf(&b, " | %s %s", lab, text);
            double e = slots[k].info.eta_seconds;
            if (e >= 0) own = fmax(own, e);
            else own_known = 0;
        } else {
            ns_buf_printf(&b, " | %s starting", lab);
            own_known = 0;
        }
        if (mean >= 0) left += mean > elapsed ? mean - elapsed : 0;
    }
    char eta[32];
    double est = mean >= 0 ? (left + pending_left * mean) / jobs : (own_known && pending_left == 0 ? own : -1);
    fmt_duration(eta, sizeof eta, est);
    ns_buf_printf(&b, " | ETA %s", eta);
    if (!b.oom && b.data) {
        if ((int)b.len > width - 1) b.data[width - 1] = 0;
        fprintf(stderr, "\r\033[K%s", b.data);
        fflush(stderr);
        t->line_shown = 1;
    }
    ns_buf_free(&b);
}

// The "status" of finished run i from its summary.json ("" if unreadable); the read's error.
static int status_of(const tally *t, int i, char *out, size_t cap) {
    out[0] = 0;
    char p[4200];
    ns_jval d;
    int rc = summary_path(t->s->run_dirs[i], p, sizeof p);
    if (rc || (rc = ns_json_parse_file(p, &d))) return rc;
    snprintf(out, cap, "%s", ns_jstr(&d, "status", ""));
    ns_jval_free(&d);
    return 0;
}

// A run ended: count it and say so (a plain line per run off a terminal; failures always).
static void run_ended(tally *t, int i, int code, const char *why, double seconds) {
    char lab[128];
    label_of(t->s, i, lab, sizeof lab);
    t->finished++;
    if (code) {
        t->failed++;
        if (!t->first_error) t->first_error = code;
        clear_line(t);
        fprintf(stderr, "normsharp: sweep run %s failed: %s\n", lab, why);
        return;
    }
    t->run_seconds += seconds;
    t->runs_timed++;
    char status[32];
    if (status_of(t, i, status, sizeof status) == NS_ENOMEM) t->oom = 1;
    int diverged = !strcmp(status, "diverged");
    t->diverged += diverged;
    if (!t->tty && !t->quiet)
        fprintf(stderr, "%s [%d/%d] %s %s in %.1f s\n", t->s->name ? t->s->name : "sweep", t->finished, t->total, lab,
                diverged ? "DIVERGED" : status[0] ? status : "done", seconds);
}

static void drain(slot *sl) {
    progress_msg m;
    for (;;) {
        ssize_t r = read(sl->fd, &m, sizeof m);
        if (r < 0 && errno == EINTR) continue;
        if (r != (ssize_t)sizeof m) return;  // empty (EAGAIN), closed, or a torn message
        if (m.kind == MSG_STEP) {
            sl->info = m.info;
            sl->reported = 1;
        } else if (m.kind == MSG_ERROR) {
            sl->err_code = m.code ? m.code : NS_EIO;
            m.text[sizeof m.text - 1] = 0;
            snprintf(sl->err, sizeof sl->err, "%s", m.text);
        }
    }
}

// The child: die with the parent (so a killed sweep leaves no orphan writing into a run
// directory that the next attempt clears), one OpenBLAS thread, one run, _exit.
static void child_main(const ns_sweep *s, int i, int fd, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    openblas_set_num_threads(1);
    ns_progress p = {.fd = fd, .next_time = 0};
    int rc = execute_run(s, i, &p);
    if (rc) {
        progress_msg m = {.kind = MSG_ERROR, .code = rc};
        snprintf(m.text, sizeof m.text, "%s", ns_errmsg());
        send_msg(fd, &m);
    }
    _exit(rc ? 1 : 0);
}

static int spawn(const ns_sweep *s, int i, slot *slots, int nslots, int k, int lock_fd) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return ns_fail(NS_EIO, "cannot create a pipe for a sweep worker: %s", strerror(errno));
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return ns_fail(NS_EIO, "cannot start a sweep worker process: %s", strerror(e));
    }
    if (pid == 0) {
        close(pfd[0]);
        if (lock_fd >= 0) close(lock_fd);
        for (int o = 0; o < nslots; o++)
            if (slots[o].pid) close(slots[o].fd);
        child_main(s, i, pfd[1], parent);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
    slots[k] = (slot){.pid = pid, .run = i, .fd = pfd[0], .start = ns_now()};
    return 0;
}

// Wait for slot k's child (its pipe has closed, so it is exiting) and account for it.
static void reap(tally *t, slot *sl) {
    int st = 0;
    pid_t r;
    do r = waitpid(sl->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    drain(sl);
    close(sl->fd);
    double secs = ns_now() - sl->start;
    char why[512];
    int code = 0;
    if (r < 0) {
        code = NS_EIO;
        snprintf(why, sizeof why, "its worker process could not be waited for (%s)", strerror(errno));
    } else if (WIFSIGNALED(st)) {
        code = NS_EIO;
        snprintf(why, sizeof why, "its worker process was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    } else if (WEXITSTATUS(st) != 0) {
        code = sl->err_code ? sl->err_code : NS_EIO;
        if (sl->err[0]) snprintf(why, sizeof why, "%s", sl->err);
        else snprintf(why, sizeof why, "its worker process exited with status %d", WEXITSTATUS(st));
    }
    run_ended(t, sl->run, code, why, secs);
    sl->pid = 0;
}

// The dispatcher: every run of `pending` (indices, in order) is carried out in a forked
// child, at most s->jobs at a time, started in index order.
static void dispatch_fork_pool(const ns_sweep *s, const int *pending, int npending, tally *t, int lock_fd) {
    int jobs = s->jobs < 1 ? 1 : s->jobs;
    int nslots = jobs < npending ? jobs : npending;
    slot *slots = ns_calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *slots);
    struct pollfd *pf = ns_calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *pf);
    if (!slots || !pf) {
        for (int q = 0; q < npending; q++) run_ended(t, pending[q], NS_ENOMEM, ns_errmsg(), 0);
        free(slots);
        free(pf);
        return;
    }
    int next = 0, running = 0;
    double last_draw = 0;
    while (next < npending || running > 0) {
        for (int k = 0; k < nslots && next < npending; k++) {
            if (slots[k].pid) continue;
            int i = pending[next++];
            if (spawn(s, i, slots, nslots, k, lock_fd)) run_ended(t, i, NS_EIO, ns_errmsg(), 0);
            else running++;
        }
        int np = 0;
        for (int k = 0; k < nslots; k++)
            if (slots[k].pid) pf[np++] = (struct pollfd){.fd = slots[k].fd, .events = POLLIN};
        if (np == 0) continue;
        int pr = poll(pf, (nfds_t)np, t->tty ? 200 : 1000);
        if (pr < 0 && errno != EINTR) pr = 0;
        for (int k = 0, q = 0; k < nslots; k++) {
            if (!slots[k].pid) continue;
            short ev = pr > 0 ? pf[q].revents : 0;
            q++;
            if (ev & POLLIN) drain(&slots[k]);
            if (ev & (POLLHUP | POLLERR | POLLNVAL)) {
                reap(t, &slots[k]);
                running--;
            }
        }
        if (ns_now() - last_draw >= 0.2) {
            draw_line(t, slots, nslots, npending - next, jobs);
            last_draw = ns_now();
        }
    }
    clear_line(t);
    free(slots);
    free(pf);
}

// ---- the sweep ------------------------------------------------------------------------

// Directory part of a path ("." if none).
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

// Two sweeps writing the same CSV at once would clear each other's runs: hold an
// exclusive lock on DIR/.sweep.lock for the whole sweep (released by the kernel when the
// process dies, so a killed sweep never blocks the next attempt). A file opened for writing,
// not the directory: NFS emulates flock with a byte-range lock, which needs one (flock(2)).
// The file stays: removing it would let a sweep lock a name another has just unlinked.
static int lock_dir(const char *dir, int *fd_out) {
    char p[4200];
    int rc = ns_path(p, sizeof p, "%s/.sweep.lock", dir);
    if (rc) return rc;
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ns_fail(NS_EIO, "cannot open the sweep lock '%s': %s", p, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return ns_fail(NS_EIO, "another sweep is writing into '%s'; wait for it to end or choose another --out", dir);
        return ns_fail(NS_EIO, "cannot lock the sweep directory '%s' (%s): %s", dir, p, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

// Remove CSV.tmp.<pid> files left by a sweep that was killed while writing the CSV.
static void remove_stale_csv_tmp(const char *dir, const char *csv_path) {
    const char *base = strrchr(csv_path, '/');
    base = base ? base + 1 : csv_path;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char p[4400];
        if (ns_path(p, sizeof p, "%s/%s", dir, e->d_name) == 0) unlink(p);
    }
    closedir(d);
}

// One CSV row per finished run, in run order, from the runs' own files.
static int write_csv(const ns_sweep *s, tally *t) {
    ns_buf b = {0};
    ns_buf_printf(&b, "%s\n", s->csv_header);
    for (int i = 0; i < s->n_runs; i++) {
        if (!run_finished(s->run_dirs[i])) continue;
        size_t mark = b.len;
        int rc = s->row(s->ctx, i, s->run_dirs[i], &b);
        if (rc) {
            b.len = mark;  // drop a partial row
            if (b.data) b.data[mark] = 0;
            t->failed++;
            if (!t->first_error) t->first_error = rc;
            char lab[128];
            label_of(s, i, lab, sizeof lab);
            fprintf(stderr, "normsharp: sweep run %s has no CSV row: %s\n", lab, ns_errmsg());
            continue;
        }
        ns_buf_append(&b, "\n", 1);
    }
    int rc = b.oom ? ns_fail(NS_ENOMEM, "out of memory assembling '%s'", s->csv_path)
                   : ns_write_file_atomic(s->csv_path, b.data, b.len);
    ns_buf_free(&b);
    return rc;
}

static void mpi_run_ended(void *t, int i, int code, const char *why, double seconds) {
    run_ended(t, i, code, why, seconds);
}

static int sweep_here(const ns_sweep *s, ns_sweep_stats *stats) {
    if (stats) *stats = (ns_sweep_stats){0};
    if (!s || s->n_runs < 0 || (s->n_runs > 0 && (!s->run_dirs || !s->run)) || !s->row || !s->csv_path ||
        !s->csv_header)
        return ns_fail(NS_EINVAL, "ns_sweep_run: incomplete sweep description");
    if (s->jobs < 1) return ns_fail(NS_EINVAL, "--jobs must be at least 1, got %d", s->jobs);
    char dir[4096];
    dir_of(s->csv_path, dir, sizeof dir);
    int rc = ns_mkdirs(dir);
    if (rc) return rc;
    int lock_fd = -1;
    if ((rc = lock_dir(dir, &lock_fd))) return rc;
    remove_stale_csv_tmp(dir, s->csv_path);

    tally t = {.s = s, .total = s->n_runs, .started = ns_now(), .quiet = s->quiet};
    t.tty = !s->quiet && isatty(STDERR_FILENO);
    int *pending = ns_calloc((size_t)(s->n_runs > 0 ? s->n_runs : 1), sizeof *pending);
    if (!pending) {
        close(lock_fd);
        return NS_ENOMEM;
    }
    int npending = 0;
    for (int i = 0; i < s->n_runs; i++) {
        if (run_finished(s->run_dirs[i])) {
            t.skipped++;
            t.finished++;
        } else {
            pending[npending++] = i;
        }
    }
    if (t.skipped && !s->quiet)
        fprintf(stderr, "sweep: %d of %d runs already finished, %d to do\n", t.skipped, t.total, npending);
    if (ns_sweep_ranks() > 1) ns_sweep_mpi_deal(s, pending, npending, execute_run, mpi_run_ended, &t);
    else dispatch_fork_pool(s, pending, npending, &t, lock_fd);
    free(pending);

    rc = write_csv(s, &t);
    close(lock_fd);
    if (stats) {
        stats->skipped = t.skipped;
        stats->failed = t.failed;
        stats->done = t.finished - t.skipped - t.failed;
        if (stats->done < 0) stats->done = 0;
        stats->seconds = ns_now() - t.started;
    }
    if (rc) return rc;
    if (t.oom)
        return ns_fail(NS_ENOMEM, "out of memory reading the status of a finished run for the progress display; "
                                  "every run and sweep.csv were written");
    if (t.failed)
        return ns_fail(t.first_error && t.first_error != NS_EINVAL ? t.first_error : NS_EIO,
                       "%d of %d sweep runs failed (see above); "
                       "rerun the same command to retry them, finished runs are kept", t.failed, t.total);
    return 0;
}

// Under mpirun with several ranks, rank 0 runs the sweep above with the MPI dispatcher and
// the other ranks carry out the runs it deals them (mpi.c); all return rank 0's result.
int ns_sweep_run(const ns_sweep *s, ns_sweep_stats *stats) {
    if (ns_sweep_ranks() > 1) return ns_sweep_mpi_run(s, stats, sweep_here, execute_run);
    return sweep_here(s, stats);
}

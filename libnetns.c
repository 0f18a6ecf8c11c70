/* libnetns: the few namespace syscalls nsproxy needs, called through FFI from pinned worker threads.
 *
 * No C library: every call is a raw syscall, so the library has no NEEDED entry and no symbol
 * version, and one .so per architecture loads under glibc and musl alike (and under any glibc the
 * runtime itself runs on). Only Linux UAPI headers are included. The one symbol taken from the
 * process is `environ`, weakly, for nsx_exec.
 *
 * No state (but for one test-only fault switch, nsx_fault_fail_enter), no printing, no exiting.
 * Every function takes integers and NUL-terminated strings and returns a non-negative value on
 * success or -errno on failure (the kernel returns -errno itself: there is no errno variable here).
 * Every descriptor is O_CLOEXEC. Error text is the caller's business (src/netns/errno-text.ts).
 *
 * Build (build.ts): cc -O2 -Wall -Wextra -Werror -nostdlib -ffreestanding -fno-stack-protector -fPIC
 *   -shared -Wl,--no-undefined -o libnetns.so libnetns.c   (aarch64-linux-gnu-gcc for arm64)
 */
#include <asm/errno.h>
#include <asm/stat.h>
#include <asm/statfs.h>
#include <asm/unistd.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <asm/socket.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "libnetns: raw syscalls are written for x86-64 and aarch64 only"
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libnetns: little-endian only (port numbers are swapped to network order below)"
#endif

/* Socket ABI values not in the UAPI headers (libc defines them); the same on x86-64 and aarch64. */
#define NSX_AF_INET 2
#define NSX_AF_INET6 10
#define NSX_SOCK_STREAM 1

/* Returned when a path opens but is not a network namespace (for example the empty placeholder file
 * `ip netns add` creates before it bind-mounts the namespace, or /proc/PID/ns/mnt). */
#define NSX_ENOTNETNS EMEDIUMTYPE

/* One syscall, up to five arguments. Returns the kernel's value: >= 0, or -errno. */
static long sys5(long n, long a, long b, long c, long d, long e) {
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
#else
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory", "cc");
  return x0;
#endif
}

#define sys0(n) sys5((n), 0, 0, 0, 0, 0)
#define sys1(n, a) sys5((n), (long)(a), 0, 0, 0, 0)
#define sys2(n, a, b) sys5((n), (long)(a), (long)(b), 0, 0, 0)
#define sys3(n, a, b, c) sys5((n), (long)(a), (long)(b), (long)(c), 0, 0)

/* aarch64 has no open(2): openat with AT_FDCWD on both. */
static int sys_open(const char *path, int flags) { return (int)sys5(__NR_openat, AT_FDCWD, (long)path, flags, 0, 0); }
static void sys_close(int fd) { sys1(__NR_close, fd); }

static unsigned long cstrlen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

/* Open a network namespace file and check that it is one. Returns an fd or -errno. */
int nsx_open(const char *path) {
  int fd = sys_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fd;

  struct statfs sfs;
  long rc = sys2(__NR_fstatfs, fd, &sfs);
  if (rc < 0) {
    sys_close(fd);
    return (int)rc;
  }
  if ((unsigned long)sfs.f_type != (unsigned long)NSFS_MAGIC) {
    sys_close(fd);
    return -NSX_ENOTNETNS;
  }
  /* NS_GET_NSTYPE (Linux 4.11) says which kind of namespace this nsfs file is. */
  long type = sys2(__NR_ioctl, fd, NS_GET_NSTYPE);
  if (type < 0) {
    sys_close(fd);
    return (int)type;
  }
  if (type != CLONE_NEWNET) {
    sys_close(fd);
    return -NSX_ENOTNETNS;
  }
  return fd;
}

/* The calling thread's own network namespace, as an fd: the worker's way home. */
int nsx_open_self(void) { return nsx_open("/proc/thread-self/ns/net"); }

/* Fault injection for tests, the one piece of state here: the calling thread's next nsx_enter(fd)
 * into this fd fails. Per thread, so only the worker that armed it is affected, and used once.
 * Armed only by a source run with NSPROXY_FAULT_STRAND_TENANT set (src/faults.ts); the release binary
 * never calls it. Keyed by thread id rather than thread-local storage: TLS in a shared library needs
 * the C library's loader (__tls_get_addr), which this library does without. A slot is claimed with a
 * compare-and-swap on its tid and then written only by its own thread. */
#define NSX_FAULT_SLOTS 64
static struct {
  int tid; /* 0: free */
  int fd;
} fault_slots[NSX_FAULT_SLOTS];

int nsx_fault_fail_enter(int fd) {
  int tid = (int)sys0(__NR_gettid);
  int free_slot = -1;
  for (int i = 0; i < NSX_FAULT_SLOTS; i++) {
    int owner = __atomic_load_n(&fault_slots[i].tid, __ATOMIC_ACQUIRE);
    if (owner == tid) {
      __atomic_store_n(&fault_slots[i].fd, fd, __ATOMIC_RELEASE);
      return 0;
    }
    if (owner == 0 && free_slot < 0) free_slot = i;
  }
  for (int i = free_slot < 0 ? NSX_FAULT_SLOTS : free_slot; i < NSX_FAULT_SLOTS; i++) {
    int expected = 0;
    if (__atomic_compare_exchange_n(&fault_slots[i].tid, &expected, tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&fault_slots[i].fd, fd, __ATOMIC_RELEASE);
      return 0;
    }
  }
  return -ENOSPC;
}

/* True once, if the calling thread armed a fault for fd: the slot is freed as it fires. */
static int fault_fires(int fd) {
  int tid = (int)sys0(__NR_gettid);
  for (int i = 0; i < NSX_FAULT_SLOTS; i++) {
    if (__atomic_load_n(&fault_slots[i].tid, __ATOMIC_ACQUIRE) != tid) continue;
    if (__atomic_load_n(&fault_slots[i].fd, __ATOMIC_ACQUIRE) != fd) return 0;
    __atomic_store_n(&fault_slots[i].fd, -1, __ATOMIC_RELEASE);
    __atomic_store_n(&fault_slots[i].tid, 0, __ATOMIC_RELEASE);
    return 1;
  }
  return 0;
}

/* Move the calling thread into the network namespace behind fd. Returns 0 or -errno. */
int nsx_enter(int fd) {
  int nstype = CLONE_NEWNET;
  /* A real setns that the kernel refuses (a network namespace fd is not a UTS one: EINVAL), so the
   * thread stays where it is and the caller sees the errno a failed return home would give. */
  if (fd >= 0 && fault_fires(fd)) nstype = CLONE_NEWUTS;
  long rc = sys2(__NR_setns, fd, nstype);
  return rc < 0 ? (int)rc : 0;
}

int nsx_close(int fd) {
  long rc = sys1(__NR_close, fd);
  return rc < 0 ? (int)rc : 0;
}

/* Identity of a namespace: device and inode of its nsfs file. A namespace replaced under the same
 * path has another inode. Both fit in a double's 53 bits on every kernel seen (ino < 2^32). */
long long nsx_dev(int fd) {
  struct stat st;
  long rc = sys2(__NR_fstat, fd, &st);
  return rc < 0 ? rc : (long long)st.st_dev;
}

long long nsx_ino(int fd) {
  struct stat st;
  long rc = sys2(__NR_fstat, fd, &st);
  return rc < 0 ? rc : (long long)st.st_ino;
}

/* Turn on net.ipv4.tcp_migrate_req in the calling thread's current network namespace (kernel >= 5.14):
 * when a listener of a SO_REUSEPORT group closes, the connections waiting in its accept queue move to
 * another listener of the group instead of being reset. A replaced tenant's old listeners close right
 * after its new ones are bound; without this, a client connecting at that moment gets a reset.
 * Called inside the window (the thread is in the tenant's namespace: /proc/sys/net is per namespace).
 * Returns 0 or -errno (-ENOENT on kernels without the setting). */
int nsx_migrate_req_on(void) {
  int fd = sys_open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  long n = sys3(__NR_write, fd, "1", 1);
  sys_close(fd);
  return n == 1 ? 0 : (n < 0 ? (int)n : -EIO);
}

/* Address parsing with the rules of glibc's inet_pton (what the library used before): IPv4 is four
 * decimal parts 0-255 without leading zeros; IPv6 is up to eight groups of 1-4 hex digits, one "::",
 * an IPv4 tail; no zone ("%eth0"), no brackets. Returns 1 on success, 0 if not an address. */
static int parse_ipv4(const char *s, const char *end, unsigned char out[4]) {
  unsigned char tmp[4] = {0, 0, 0, 0};
  int part = 0, digits = 0;
  for (; s < end; s++) {
    char ch = *s;
    if (ch >= '0' && ch <= '9') {
      unsigned v = (unsigned)tmp[part] * 10 + (unsigned)(ch - '0');
      if (digits > 0 && tmp[part] == 0) return 0; /* leading zero */
      if (v > 255) return 0;
      tmp[part] = (unsigned char)v;
      digits++;
    } else if (ch == '.' && digits > 0) {
      if (part == 3) return 0;
      part++;
      digits = 0;
    } else {
      return 0;
    }
  }
  if (part != 3 || digits == 0) return 0;
  for (int i = 0; i < 4; i++) out[i] = tmp[i];
  return 1;
}

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int parse_ipv6(const char *s, const char *end, unsigned char out[16]) {
  unsigned char tmp[16];
  for (int i = 0; i < 16; i++) tmp[i] = 0;
  int at = 0;     /* bytes written to tmp */
  int gap = -1;   /* where "::" stands, as a byte offset */
  if (s == end) return 0;
  if (*s == ':' && (++s == end || *s != ':')) return 0; /* a leading ':' only as "::" */
  const char *group = s;
  int digits = 0;
  unsigned val = 0;
  while (s < end) {
    char ch = *s++;
    int h = hex_value(ch);
    if (h >= 0) {
      if (digits == 4) return 0;
      val = (val << 4) | (unsigned)h;
      digits++;
      continue;
    }
    if (ch == ':') {
      group = s;
      if (digits == 0) {
        if (gap >= 0) return 0; /* a second "::" (or ":::") */
        gap = at;
        continue;
      }
      if (s == end) return 0; /* a trailing single ':' */
      if (at + 2 > 16) return 0;
      tmp[at++] = (unsigned char)(val >> 8);
      tmp[at++] = (unsigned char)val;
      digits = 0;
      val = 0;
      continue;
    }
    if (ch == '.' && at + 4 <= 16 && parse_ipv4(group, end, tmp + at)) {
      at += 4;
      digits = 0;
      break; /* the IPv4 tail ran to the end */
    }
    return 0;
  }
  if (digits > 0) {
    if (at + 2 > 16) return 0;
    tmp[at++] = (unsigned char)(val >> 8);
    tmp[at++] = (unsigned char)val;
  }
  if (gap >= 0) {
    if (at == 16) return 0; /* "::" must stand for at least one group */
    int tail = at - gap;
    for (int i = 1; i <= tail; i++) {
      tmp[16 - i] = tmp[at - i];
      tmp[at - i] = 0;
    }
    at = 16;
  }
  if (at != 16) return 0;
  for (int i = 0; i < 16; i++) out[i] = tmp[i];
  return 1;
}

/* An IPv4 or IPv6 literal and a port as a socket address. Returns its length, or -EINVAL. */
union nsx_sockaddr {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  unsigned char bytes[sizeof(struct sockaddr_in6)];
};
static int fill_sockaddr(const char *addr, int port, union nsx_sockaddr *sa, int *family) {
  if (port < 0 || port > 65535) return -EINVAL;
  for (unsigned i = 0; i < sizeof sa->bytes; i++) sa->bytes[i] = 0;
  /* Network byte order: both architectures here are little-endian (checked at the top). */
  unsigned short nport = (unsigned short)(((port & 0xff) << 8) | ((port >> 8) & 0xff));
  const char *end = addr + cstrlen(addr);
  if (parse_ipv4(addr, end, (unsigned char *)&sa->v4.sin_addr)) {
    *family = NSX_AF_INET;
    sa->v4.sin_family = NSX_AF_INET;
    sa->v4.sin_port = nport;
    return sizeof sa->v4;
  }
  if (parse_ipv6(addr, end, sa->v6.sin6_addr.s6_addr)) {
    *family = NSX_AF_INET6;
    sa->v6.sin6_family = NSX_AF_INET6;
    sa->v6.sin6_port = nport;
    return sizeof sa->v6;
  }
  return -EINVAL;
}

/* socket + bind on addr:port in the calling thread's current namespace, then close. Returns 0 or
 * -errno. Used after the runtime failed to listen, to learn the precise reason (EADDRNOTAVAIL for an
 * address that is not there, EADDRINUSE for a taken port). SO_REUSEADDR and SO_REUSEPORT as the
 * runtime's listener has them: a port in TIME_WAIT, or held by nsproxy's own listener in another
 * worker, must not read as taken (that hid the real cause, EMFILE, at 10,000 tenants). */
int nsx_probe_bind(const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;

  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_CLOEXEC, 0); /* SOCK_CLOEXEC == O_CLOEXEC */
  if (fd < 0) return fd;
  int one = 1;
  long rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one);
  if (rc == 0) rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEPORT, (long)&one, sizeof one);
  if (rc == 0 && family == NSX_AF_INET6) rc = sys5(__NR_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, (long)&one, sizeof one);
  if (rc == 0) rc = sys3(__NR_bind, fd, &sa, len);
  if (rc == 0) rc = sys2(__NR_listen, fd, 1);
  sys_close(fd);
  return rc < 0 ? (int)rc : 0;
}

/* Is addr:port free of every other socket in the calling thread's current namespace? socket + bind
 * with SO_REUSEADDR but WITHOUT SO_REUSEPORT, then close: the kernel refuses the bind (EADDRINUSE)
 * when any socket listens on an address that overlaps this one (the same address, the wildcard of its
 * family, or [::] without IPV6_ONLY for IPv4), whoever owns it: SO_REUSEPORT is how two listeners
 * share, so a probe without it sees what nsproxy's own listeners would silently share with. A TIME_WAIT
 * connection does not count (SO_REUSEADDR). IPv6 as the runtimes listen: dual-stack (IPV6_V6ONLY 0),
 * so [::] is refused when an IPv4 listener holds the port. Returns 0 or -errno. */
int nsx_probe_alone(const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;
  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_CLOEXEC, 0);
  if (fd < 0) return fd;
  int one = 1, zero = 0;
  long rc = sys5(__NR_setsockopt, fd, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one);
  if (rc == 0 && family == NSX_AF_INET6) rc = sys5(__NR_setsockopt, fd, IPPROTO_IPV6, IPV6_V6ONLY, (long)&zero, sizeof zero);
  if (rc == 0) rc = sys3(__NR_bind, fd, &sa, len);
  sys_close(fd);
  return rc < 0 ? (int)rc : 0;
}

/* Open the calling thread's current namespace's TCP socket table (which 0: /proc/thread-self/net/tcp,
 * 1: tcp6) and return the fd, or -errno. A proc net file holds on to the namespace it was opened in:
 * read it later, from home, with nsx_read, and it still lists the tenant namespace's sockets. Fixed
 * paths: nothing else can be opened this way inside the window. */
int nsx_open_net_table(int which) {
  if (which != 0 && which != 1) return -EINVAL;
  return sys_open(which ? "/proc/thread-self/net/tcp6" : "/proc/thread-self/net/tcp", O_RDONLY | O_CLOEXEC);
}

/* read(2) until len bytes or end of file: the number read, or -errno. */
int nsx_read(int fd, unsigned char *buf, int len) {
  int got = 0;
  while (got < len) {
    long n = sys3(__NR_read, fd, buf + got, len - got);
    if (n < 0 && n != -EINTR) return (int)n;
    if (n == 0) break;
    if (n > 0) got += (int)n;
  }
  return got;
}

/* Ingress: in the network namespace behind nsfd, a non-blocking socket and connect(addr:port), then
 * back to homefd, all in C: no JavaScript ever runs inside the namespace. The socket belongs to the
 * tenant's namespace for its whole life. Returns the fd (connected, or with the connect in progress),
 * -errno when the socket or connect failed at once (ECONNREFUSED on loopback is immediate), or
 * NSX_ESTRANDED when the thread could not return home (it must never be used again). */
#define NSX_ESTRANDED (-4000)
int nsx_so_error(int fd);
int nsx_connect_in(int nsfd, int homefd, const char *addr, int port) {
  union nsx_sockaddr sa;
  int family;

  if (port == 0) return -EINVAL;
  int len = fill_sockaddr(addr, port, &sa, &family);
  if (len < 0) return len;
  long rc = sys2(__NR_setns, nsfd, CLONE_NEWNET);
  if (rc < 0) return (int)rc;
  /* ---- inside the tenant's namespace ---- */
  int fd = (int)sys3(__NR_socket, family, NSX_SOCK_STREAM | O_NONBLOCK | O_CLOEXEC, 0); /* SOCK_NONBLOCK == O_NONBLOCK */
  if (fd >= 0) {
    rc = sys3(__NR_connect, fd, &sa, len);
    if (rc < 0 && rc != -EINPROGRESS) {
      sys_close(fd);
      fd = (int)rc;
    }
  }
  int nstype = CLONE_NEWNET;
  if (homefd >= 0 && fault_fires(homefd)) nstype = CLONE_NEWUTS; /* the strand fault, as in nsx_enter */
  if (sys2(__NR_setns, homefd, nstype) < 0) {
    if (fd >= 0) sys_close(fd);
    return NSX_ESTRANDED;
  }
  /* ---- home ---- */
  /* A refusal on the namespace's loopback is usually known by now: report it with its errno rather than
   * as a socket that opens and closes (the runtime's adopted socket cannot tell why). */
  if (fd >= 0) {
    struct {
      int fd;
      short events, revents;
    } p = {fd, 4 /* POLLOUT */, 0};
    struct {
      long sec, nsec;
    } zero = {0, 0};
    if (sys5(__NR_ppoll, (long)&p, 1, (long)&zero, 0, 0) == 1) {
      int err = nsx_so_error(fd);
      if (err > 0) {
        sys_close(fd);
        return -err;
      }
    }
  }
  return fd;
}

/* The pending error of a socket (SO_ERROR): 0, or the errno of a failed non-blocking connect. Negative:
 * getsockopt itself failed. */
int nsx_so_error(int fd) {
  int err = 0;
  int len = sizeof err;
  long rc = sys5(__NR_getsockopt, fd, SOL_SOCKET, SO_ERROR, (long)&err, (long)&len);
  return rc < 0 ? (int)rc : err;
}

/* The process's environment, from whichever C library loaded us (glibc and musl both define it).
 * Weak: taking it adds no NEEDED entry and no symbol version. */
extern char **environ __attribute__((weak));

#define NSX_ARGV_MAX 4096
#define NSX_ENV_MAX 4096
#define NSX_ENV_SET_MAX 64

/* Length of the NAME in "NAME=VALUE" (0 if there is no '='). */
static unsigned long name_len(const char *entry) {
  unsigned long n = 0;
  while (entry[n] && entry[n] != '=') n++;
  return entry[n] == '=' ? n : 0;
}

static int same_name(const char *a, const char *b, unsigned long n) {
  for (unsigned long i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return b[n] == '=';
}

/* Replace the process image: the environment with each NAME=VALUE of env (envc entries,
 * NUL-separated) set as setenv would (an existing NAME replaced in place, a new one appended), then
 * execve(path, argv) with argc NUL-separated arguments. Only returns on failure, with -errno; the
 * environment of this process is then left as it was. Used once at start-up to set runtime options
 * that must be in the environment before the runtime initialises; exec keeps the PID, so supervisors
 * and signals see no difference. Runs on the main thread (~65 kB of stack for the two arrays). */
int nsx_exec(const char *path, const char *argv_packed, int argc, const char *env_packed, int envc) {
  if (argc < 1 || argc > NSX_ARGV_MAX || envc < 0 || envc > NSX_ENV_SET_MAX) return -EINVAL;
  if (!&environ) return -ENOSYS; /* no C library in the process: nothing to inherit from */

  char *envp[NSX_ENV_MAX + NSX_ENV_SET_MAX + 1];
  int n = 0;
  for (char **e = environ; e && *e; e++) {
    if (n == NSX_ENV_MAX) return -E2BIG;
    envp[n++] = *e;
  }
  const char *p = env_packed;
  for (int i = 0; i < envc; i++) {
    unsigned long len = name_len(p);
    if (len == 0 || len >= 128) return -EINVAL;
    int k = 0;
    while (k < n && !same_name(p, envp[k], len)) k++;
    if (k == n) n++;
    envp[k] = (char *)p;
    p += cstrlen(p) + 1;
  }
  envp[n] = 0;

  char *argv[NSX_ARGV_MAX + 1];
  p = argv_packed;
  for (int i = 0; i < argc; i++) {
    argv[i] = (char *)p;
    p += cstrlen(p) + 1;
  }
  argv[argc] = 0;
  return (int)sys3(__NR_execve, path, argv, envp);
}

#define NSX_GROUPS_MAX 256
/* nsx_drop_exec's flags. */
#define NSX_DROP_BOUNDING 1 /* reduce the bounding set too (needs CAP_SETPCAP, which root has) */

static long prctl5(long option, long a, long b, long c, long d) { return sys5(__NR_prctl, option, a, b, c, d); }

/* A little-endian unsigned integer of `n` bytes from a byte string (no alignment assumed). */
static unsigned long long read_le(const unsigned char *b, int n) {
  unsigned long long v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

/* Run as `uid`/`gid` (with `ngroups` supplementary groups, 4 bytes each, little-endian) holding only the
 * capabilities of `keep` (a 64-bit mask, 8 bytes little-endian), with no_new_privs set, then exec as
 * nsx_exec does. uid < 0: keep the user (a process started as a user with ambient capabilities, by
 * systemd or setpriv, only gives up what it does not need).
 *
 * Why in C, right before execve: credentials and no_new_privs belong to each thread, and these are raw
 * syscalls (no C library to broadcast them to every thread), so they change the calling thread only.
 * execve keeps only that thread, and every thread the new image starts inherits its credentials: the
 * whole process ends up with the same ones. The order is the kernel's:
 *   1. the bounding set first, while CAP_SETPCAP is still effective;
 *   2. PR_SET_KEEPCAPS, so that setresuid away from root keeps the permitted set (it clears the effective);
 *   3. setgroups, setresgid, then setresuid (after it, changing groups would need CAP_SETGID);
 *   4. capset: effective = permitted = inheritable = keep (everything else gone for good);
 *   5. the ambient set = keep: what survives execve of a file without file capabilities as a non-root user;
 *   6. no_new_privs: exec can gain nothing (setuid binaries, file capabilities) from here on.
 * Returns only on failure, with -errno, possibly halfway: the calling thread may have changed already
 * and the caller must exit. */
int nsx_drop_exec(int uid, int gid, const unsigned char *groups, int ngroups, const unsigned char *keep_le, int flags, const char *path,
                  const char *argv_packed, int argc, const char *env_packed, int envc) {
  if (ngroups < 0 || ngroups > NSX_GROUPS_MAX || argc < 1 || argc > NSX_ARGV_MAX || envc < 0 || envc > NSX_ENV_SET_MAX) return -EINVAL;
  unsigned long long keep = read_le(keep_le, 8);
  long rc;

  if (flags & NSX_DROP_BOUNDING) {
    /* PR_CAPBSET_READ says EINVAL past the last capability this kernel knows. */
    for (int cap = 0; cap < 64 && prctl5(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
      if (keep & (1ULL << cap)) continue;
      rc = prctl5(PR_CAPBSET_DROP, cap, 0, 0, 0);
      if (rc < 0) return (int)rc;
    }
  }

  if (uid >= 0) {
    unsigned int gids[NSX_GROUPS_MAX];
    for (int i = 0; i < ngroups; i++) gids[i] = (unsigned int)read_le(groups + 4 * i, 4);
    if ((rc = prctl5(PR_SET_KEEPCAPS, 1, 0, 0, 0)) < 0) return (int)rc;
    if ((rc = sys2(__NR_setgroups, ngroups, gids)) < 0) return (int)rc;
    if ((rc = sys3(__NR_setresgid, gid, gid, gid)) < 0) return (int)rc;
    if ((rc = sys3(__NR_setresuid, uid, uid, uid)) < 0) return (int)rc;
  }

  struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    unsigned int half = (unsigned int)(keep >> (32 * i));
    data[i].effective = half;
    data[i].permitted = half;
    data[i].inheritable = half;
  }
  if ((rc = sys2(__NR_capset, &head, data)) < 0) return (int)rc;

  if ((rc = prctl5(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) < 0) return (int)rc;
  for (int cap = 0; cap < 64; cap++) {
    if (!(keep & (1ULL << cap))) continue;
    if ((rc = prctl5(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) < 0) return (int)rc;
  }
  if ((rc = prctl5(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) return (int)rc;

  return nsx_exec(path, argv_packed, argc, env_packed, envc);
}

/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * It does nothing but wait. SIGINT and SIGTERM make it exit at once with status 0 (the
 * runtime stops the sandbox with SIGTERM, so a prompt exit matters). As PID 1 of a pod
 * that shares its PID namespace it is also the reaper: SIGCHLD makes it collect every
 * exited child so that no zombies pile up.
 *
 * Built with `gcc -static` so the image can be FROM scratch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "3.10-tp"
#endif

/* write(2) is async-signal-safe, stdio is not. */
static void say(int fd, const char *msg) {
  size_t len = strlen(msg);
  while (len > 0) {
    ssize_t n = write(fd, msg, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    msg += n;
    len -= (size_t)n;
  }
}

static void on_shutdown(int signo) {
  say(STDERR_FILENO, signo == SIGINT ? "pause: SIGINT, exiting\n" : "pause: SIGTERM, exiting\n");
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int handle(int signo, void (*fn)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  /* Don't let a shutdown signal interrupt a reap in progress, nor vice versa. */
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGCHLD);
  return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
      say(STDOUT_FILENO, "pause " PAUSE_VERSION "\n");
      return 0;
    }
    say(STDERR_FILENO, "usage: pause [-v]\n");
    return 2;
  }

  if (getpid() != 1)
    say(STDERR_FILENO, "pause: warning: not running as PID 1\n");

  if (handle(SIGINT, on_shutdown, 0) != 0 || handle(SIGTERM, on_shutdown, 0) != 0 ||
      handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
    say(STDERR_FILENO, "pause: sigaction failed\n");
    return 1;
  }

  /* Children that exited before the handler was installed. */
  on_child(SIGCHLD);

  for (;;)
    pause();
  /* not reached */
  return 42;
}

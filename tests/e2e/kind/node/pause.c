/* Pod sandbox holder for the offline kind node image: the first process of every pod.
 * It only waits: exits 0 on SIGINT/SIGTERM, and reaps children (it is PID 1 of the
 * pod's PID namespace when the namespace is shared). Built statically, no libc at run time. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t pause_stop;

static void pause_on_stop(int sig)
{
	(void)sig;
	pause_stop = 1;
}

static void pause_on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("weir-pause 1\n");
		return 0;
	}
	if (getpid() != 1) {
		fprintf(stderr, "pause: warning: not PID 1\n");
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = pause_on_stop;
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
		return 1;
	}
	sa.sa_handler = pause_on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) != 0) {
		return 1;
	}
	while (!pause_stop) {
		pause();
	}
	return 0;
}

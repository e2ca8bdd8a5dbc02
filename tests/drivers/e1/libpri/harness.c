/*
 * A real PRI peer for edge112's tests: two libpri instances, the network side (the PSTN)
 * and the user side (a 112 centre's PBX), linked over a socket pair, place and clear the
 * calls given on the command line, and every D-channel frame of both directions is written
 * down as a passive tap would see it.
 *
 *     harness OUTPUT CALL...
 *
 *     CALL = KIND:CALLER:CALLED:CHANNEL[:CONFIRMED]
 *       KIND      answered  the centre answers; the caller hangs up (cause 16)
 *                 abandoned the centre alerts; the caller hangs up before an answer
 *                 busy      the centre takes the SETUP (CALL PROCEEDING), then refuses it:
 *                           user busy (17)
 *                 nocircuit the centre refuses the SETUP at once: no circuit (34), which
 *                           libpri sends as RELEASE COMPLETE
 *                 rejected  the centre alerts, then refuses: call rejected (21)
 *                 withheld  as answered, the caller's number presentation restricted
 *                 overlap   as answered, the called number sent one digit per INFORMATION
 *                 served    as answered, but the centre hangs up (cause 16)
 *                 restarted as answered, then the network restarts the call's channel
 *                           (RESTART, RESTART ACKNOWLEDGE) instead of clearing it: cause=0
 *       CALLER    national number digits, or - for none (presentation: not available)
 *       CHANNEL   the B-channel (E1 timeslot) the SETUP offers; exclusive unless CONFIRMED
 *                 is given: then only preferred, and the centre takes CONFIRMED instead
 *
 * OUTPUT gets one line per frame and one per call, in the order they happened:
 *
 *     frame n2u|u2n EPOCH_NS HEX      the LAPD frame (libpri writes each frame followed by
 *                                     two FCS placeholder octets, as a DAHDI HDLC channel
 *                                     wants; they are not part of the frame and are dropped)
 *     call INDEX KIND cref=N channel=N caller=DIGITS|- pres=N called=DIGITS
 *          cleared_by=network|user cause=N
 *                                     what libpri saw: the user side's RING event (call
 *                                     reference, channel, caller, presentation octet, the
 *                                     called digits it collected) and the clearing side and
 *                                     cause as the other side's libpri received them
 *
 * Exit status 0 when every call ran, 1 on a timeout or a libpri failure (said on stderr),
 * 2 on bad arguments. One thread; both instances are driven from one poll loop.
 * HARNESS_DEBUG=1 in the environment prints libpri's events and call states on stderr.
 *
 * Written for edge112 after reading how libpri's own testprilib.c links two instances;
 * no code is taken from it. Build: gcc -o harness harness.c -lpri (Debian libpri-dev).
 */

#include <errno.h>
#include <fcntl.h>
#include <libpri.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CALLS 32
#define MAX_ACTIONS 64
#define STEP_MS 40       /* pause between the steps of a call: rings and talk take time */
#define GAP_MS 100       /* after a call is over, before the next one */
#define TAIL_MS 300      /* after the last call: the last frames and acknowledgements */
#define DEADLINE_S 30    /* the whole script */

enum kind { ANSWERED, ABANDONED, BUSY, NOCIRCUIT, REJECTED, WITHHELD, OVERLAP, SERVED, RESTARTED };
static const char *kind_names[] = {
	"answered", "abandoned", "busy", "nocircuit", "rejected", "withheld", "overlap", "served",
	"restarted",
};

struct call {
	enum kind kind;
	char caller[64];
	char called[64];
	int channel;
	int confirmed;          /* 0: the SETUP's channel is exclusive */
	q931_call *network;     /* libpri's call objects on either side */
	q931_call *user;
	/* what libpri reported */
	int cref;
	int ring_channel;
	char ring_caller[256];
	int ring_presentation;
	char ring_called[256];
	int sent_digits;
	const char *cleared_by;
	int cause;
	int over;
};

struct action {
	long long due_ns;
	void (*run)(int index);
	int index;
	int used;
};

static struct pri *network_pri, *user_pri;
static int network_fd = -1;
static struct call calls[MAX_CALLS];
static int call_count, current = -1;
static struct action actions[MAX_ACTIONS];
static FILE *output;
static int network_up, user_up, finished;

static long long now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void fail(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	fprintf(stderr, "harness: ");
	vfprintf(stderr, format, args);
	fprintf(stderr, "\n");
	va_end(args);
	exit(1);
}

static void later(int ms, void (*run)(int), int index)
{
	for (int i = 0; i < MAX_ACTIONS; i++) {
		if (!actions[i].used) {
			actions[i] = (struct action){now_ns() + ms * 1000000LL, run, index, 1};
			return;
		}
	}
	fail("too many pending actions");
}

/* -- the tap: every frame either side writes ----------------------------------------- */

static int tap_write(struct pri *pri, void *buf, int buflen)
{
	const unsigned char *octets = buf;
	int frame_length = buflen - 2; /* the two FCS placeholder octets */
	/* by descriptor: pri_new_cb() sends its first SABME before it returns the instance */
	fprintf(output, "frame %s %lld ", pri_fd(pri) == network_fd ? "n2u" : "u2n", now_ns());
	for (int i = 0; i < frame_length; i++)
		fprintf(output, "%02x", octets[i]);
	fprintf(output, "\n");
	int written = write(pri_fd(pri), buf, buflen);
	return written < 0 ? 0 : written;
}

static int tap_read(struct pri *pri, void *buf, int buflen)
{
	int got = read(pri_fd(pri), buf, buflen);
	return got < 0 ? 0 : got;
}

static void libpri_message(struct pri *pri, char *text)
{
	if (getenv("HARNESS_DEBUG"))
		fprintf(stderr, "libpri %s: %s", pri_fd(pri) == network_fd ? "network" : "user", text);
}

static void libpri_error(struct pri *pri, char *text)
{
	fprintf(stderr, "libpri %s: %s", pri == network_pri ? "network" : "user", text);
}

/* -- the calls --------------------------------------------------------------------- */

static void start_call(int index);

static void call_over(int index, const char *cleared_by, int cause)
{
	struct call *call = &calls[index];
	if (call->over)
		return;
	call->over = 1;
	if (!call->cleared_by) {
		call->cleared_by = cleared_by;
		call->cause = cause;
	}
	fprintf(output, "call %d %s cref=%d channel=%d caller=%s pres=%d called=%s cleared_by=%s cause=%d\n",
		index, kind_names[call->kind], call->cref, call->ring_channel,
		call->ring_caller[0] ? call->ring_caller : "-", call->ring_presentation,
		call->ring_called, call->cleared_by, call->cause);
	if (index + 1 < call_count)
		later(GAP_MS, start_call, index + 1);
	else
		later(TAIL_MS, NULL, -1);
}

static void start_call(int index)
{
	struct call *call = &calls[index];
	struct pri_sr *request = pri_sr_new();
	current = index;
	call->network = pri_new_call(network_pri);
	if (!call->network || !request)
		fail("cannot make call %d", index);
	pri_sr_set_channel(request, call->channel, call->confirmed ? 0 : 1, 0);
	pri_sr_set_bearer(request, PRI_TRANS_CAP_SPEECH, PRI_LAYER_1_ALAW);
	if (call->caller[0] == '-')
		pri_sr_set_caller(request, NULL, NULL, PRI_UNKNOWN, PRES_NUMBER_NOT_AVAILABLE);
	else
		pri_sr_set_caller(request, call->caller, NULL, PRI_NATIONAL_ISDN,
			call->kind == WITHHELD ? PRES_PROHIB_USER_NUMBER_NOT_SCREENED
					       : PRES_ALLOWED_USER_NUMBER_NOT_SCREENED);
	if (call->kind == OVERLAP) {
		char first[2] = {call->called[0], 0};
		pri_sr_set_called(request, first, PRI_UNKNOWN, 0);
		call->sent_digits = 1;
	} else {
		pri_sr_set_called(request, call->called, PRI_UNKNOWN, 1);
	}
	if (pri_setup(network_pri, call->network, request))
		fail("pri_setup of call %d failed", index);
	pri_sr_free(request);
}

static void network_hangs_up(int index)
{
	calls[index].cleared_by = "network";
	calls[index].cause = PRI_CAUSE_NORMAL_CLEARING;
	pri_hangup(network_pri, calls[index].network, PRI_CAUSE_NORMAL_CLEARING);
}

static void user_hangs_up(int index)
{
	int cause = calls[index].kind == REJECTED ? PRI_CAUSE_CALL_REJECTED : PRI_CAUSE_NORMAL_CLEARING;
	calls[index].cleared_by = "user";
	calls[index].cause = cause;
	pri_hangup(user_pri, calls[index].user, cause);
}

static void network_restarts(int index)
{
	calls[index].cleared_by = "network";
	calls[index].cause = 0;
	pri_reset(network_pri, calls[index].confirmed ? calls[index].confirmed : calls[index].channel);
}

static void user_answers(int index)
{
	struct call *call = &calls[index];
	pri_answer(user_pri, call->user, call->confirmed ? call->confirmed : call->channel, 0);
}

static void next_digit(int index)
{
	struct call *call = &calls[index];
	if (call->called[call->sent_digits]) {
		pri_information(network_pri, call->network, call->called[call->sent_digits++]);
		if (call->called[call->sent_digits])
			later(STEP_MS / 4, next_digit, index);
	}
}

static void user_accepts(int index)
{
	struct call *call = &calls[index];
	int channel = call->confirmed ? call->confirmed : call->channel;
	pri_proceeding(user_pri, call->user, channel, 0);
	pri_acknowledge(user_pri, call->user, channel, 0);
	switch (call->kind) {
	case REJECTED:
		later(STEP_MS, user_hangs_up, index);
		break;
	case ABANDONED:
		break; /* the caller gives up: see PRI_EVENT_RINGING */
	default:
		later(STEP_MS, user_answers, index);
	}
}

static int find(q931_call *object, int network)
{
	/* Only calls not over: libpri may give a new call the memory of one it freed. */
	for (int i = 0; i < call_count; i++)
		if (!calls[i].over && (network ? calls[i].network : calls[i].user) == object)
			return i;
	return -1;
}

static void network_event(pri_event *event)
{
	int index;
	if (getenv("HARNESS_DEBUG"))
		fprintf(stderr, "network: %s\n", pri_event2str(event->e));
	switch (event->e) {
	case PRI_EVENT_DCHAN_UP:
		network_up = 1;
		if (user_up && current < 0)
			later(STEP_MS, start_call, 0);
		break;
	case PRI_EVENT_SETUP_ACK:
		if ((index = find(event->setup_ack.call, 1)) >= 0)
			later(STEP_MS / 4, next_digit, index);
		break;
	case PRI_EVENT_RINGING:
		if ((index = find(event->ringing.call, 1)) >= 0 && calls[index].kind == ABANDONED)
			later(STEP_MS, network_hangs_up, index);
		break;
	case PRI_EVENT_ANSWER:
		if ((index = find(event->answer.call, 1)) < 0)
			break;
		if (calls[index].kind == RESTARTED)
			later(2 * STEP_MS, network_restarts, index);
		else
			later(2 * STEP_MS, calls[index].kind == SERVED ? user_hangs_up : network_hangs_up,
			      index);
		break;
	case PRI_EVENT_RESTART_ACK: /* the channel is idle: the call on it is gone */
		if (current >= 0 && calls[current].kind == RESTARTED) {
			index = current;
			pri_destroycall(network_pri, calls[index].network);
			call_over(index, "network", 0);
		}
		break;
	case PRI_EVENT_HANGUP_REQ: /* DISCONNECT from the centre */
		if ((index = find(event->hangup.call, 1)) >= 0) {
			calls[index].cause = event->hangup.cause;
			pri_hangup(network_pri, event->hangup.call, event->hangup.cause);
		}
		break;
	case PRI_EVENT_HANGUP: /* RELEASE or RELEASE COMPLETE from the centre */
		if ((index = find(event->hangup.call, 1)) >= 0) {
			if (!calls[index].cleared_by) {
				calls[index].cleared_by = "user";
				calls[index].cause = event->hangup.cause;
			}
			pri_hangup(network_pri, event->hangup.call, event->hangup.cause);
			call_over(index, "user", event->hangup.cause);
		}
		break;
	case PRI_EVENT_HANGUP_ACK: /* our clearing is complete */
		if ((index = find(event->hangup.call, 1)) >= 0)
			call_over(index, "network", event->hangup.cause);
		break;
	default:
		break;
	}
}

static void user_event(pri_event *event)
{
	struct call *call;
	switch (event->e) {
	case PRI_EVENT_DCHAN_UP:
		user_up = 1;
		if (network_up && current < 0)
			later(STEP_MS, start_call, 0);
		break;
	case PRI_EVENT_RING:
		if (current < 0)
			fail("a SETUP came with no call in progress");
		call = &calls[current];
		call->user = event->ring.call;
		call->cref = event->ring.cref;
		call->ring_channel = event->ring.channel;
		call->ring_presentation = event->ring.callingpres;
		snprintf(call->ring_caller, sizeof call->ring_caller, "%s", event->ring.callingnum);
		snprintf(call->ring_called, sizeof call->ring_called, "%s", event->ring.callednum);
		if (call->kind == BUSY || call->kind == NOCIRCUIT) {
			int cause = call->kind == BUSY ? PRI_CAUSE_USER_BUSY
						       : PRI_CAUSE_NORMAL_CIRCUIT_CONGESTION;
			/* libpri sends nothing for a call its upper layer never took up, except a
			 * RELEASE COMPLETE for a few causes (34 among them) */
			if (call->kind == BUSY)
				pri_proceeding(user_pri, call->user, call->channel, 0);
			call->cleared_by = "user";
			call->cause = cause;
			pri_hangup(user_pri, call->user, cause);
		} else if (!event->ring.complete && strlen(call->ring_called) < strlen(call->called)) {
			int channel = call->confirmed ? call->confirmed : call->channel;
			pri_need_more_info(user_pri, call->user, channel, 0);
		} else {
			user_accepts(current);
		}
		break;
	case PRI_EVENT_INFO_RECEIVED:
		if (current < 0 || calls[current].user != event->ring.call)
			break;
		call = &calls[current];
		strncat(call->ring_called, event->ring.callednum,
			sizeof call->ring_called - strlen(call->ring_called) - 1);
		if (strlen(call->ring_called) >= strlen(call->called))
			user_accepts(current);
		break;
	case PRI_EVENT_HANGUP_REQ: /* DISCONNECT from the caller's side */
		pri_hangup(user_pri, event->hangup.call, event->hangup.cause);
		break;
	case PRI_EVENT_HANGUP:
		pri_hangup(user_pri, event->hangup.call, event->hangup.cause);
		break;
	case PRI_EVENT_RESTART: /* the network restarted a channel: drop the call on it */
		if (current >= 0 && calls[current].kind == RESTARTED && calls[current].user) {
			pri_destroycall(user_pri, calls[current].user);
			calls[current].user = NULL;
		}
		break;
	default:
		break;
	}
}

/* -- the loop ---------------------------------------------------------------------- */

static int parse(const char *text, struct call *call)
{
	char copy[256], *fields[5] = {0};
	int count = 0;
	snprintf(copy, sizeof copy, "%s", text);
	for (char *part = strtok(copy, ":"); part && count < 5; part = strtok(NULL, ":"))
		fields[count++] = part;
	if (count < 4)
		return -1;
	memset(call, 0, sizeof *call);
	call->kind = -1;
	for (unsigned k = 0; k < sizeof kind_names / sizeof *kind_names; k++)
		if (!strcmp(fields[0], kind_names[k]))
			call->kind = k;
	if ((int)call->kind < 0)
		return -1;
	snprintf(call->caller, sizeof call->caller, "%s", fields[1]);
	snprintf(call->called, sizeof call->called, "%s", fields[2]);
	call->channel = atoi(fields[3]);
	call->confirmed = count > 4 ? atoi(fields[4]) : 0;
	if (call->channel < 1 || call->channel > 31 || call->channel == 16 || !call->called[0])
		return -1;
	return 0;
}

static long long next_due(struct pri *pri, long long due)
{
	struct timeval *next = pri_schedule_next(pri);
	if (next) {
		long long at = (long long)next->tv_sec * 1000000000LL + next->tv_usec * 1000LL;
		if (at < due)
			due = at;
	}
	return due;
}

int main(int argc, char **argv)
{
	int pair[2];
	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTPUT KIND:CALLER:CALLED:CHANNEL[:CONFIRMED]...\n", argv[0]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (call_count == MAX_CALLS || parse(argv[i], &calls[call_count++])) {
			fprintf(stderr, "harness: bad call %s\n", argv[i]);
			return 2;
		}
	}
	if (!(output = fopen(argv[1], "w")))
		fail("cannot write %s: %s", argv[1], strerror(errno));
	setvbuf(output, NULL, _IOLBF, 0);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair))
		fail("socketpair: %s", strerror(errno));
	for (int i = 0; i < 2; i++)
		fcntl(pair[i], F_SETFL, fcntl(pair[i], F_GETFL) | O_NONBLOCK);
	network_fd = pair[0];
	pri_set_message(libpri_message);
	pri_set_error(libpri_error);
	network_pri = pri_new_cb(pair[0], PRI_NETWORK, PRI_SWITCH_EUROISDN_E1, tap_read, tap_write, NULL);
	user_pri = pri_new_cb(pair[1], PRI_CPE, PRI_SWITCH_EUROISDN_E1, tap_read, tap_write, NULL);
	if (!network_pri || !user_pri)
		fail("pri_new_cb failed");
	if (getenv("HARNESS_DEBUG")) {
		pri_set_debug(network_pri, PRI_DEBUG_Q931_STATE);
		pri_set_debug(user_pri, PRI_DEBUG_Q931_STATE);
	}
	pri_set_overlapdial(network_pri, 1);
	pri_set_overlapdial(user_pri, 1);

	long long deadline = now_ns() + DEADLINE_S * 1000000000LL;
	while (!finished) {
		long long now = now_ns(), due = deadline;
		if (now >= deadline)
			fail("calls not done within %d s (call %d)", DEADLINE_S, current);
		for (int i = 0; i < MAX_ACTIONS; i++)
			if (actions[i].used && actions[i].due_ns < due)
				due = actions[i].due_ns;
		due = next_due(network_pri, next_due(user_pri, due));
		struct pollfd fds[2] = {{pair[0], POLLIN, 0}, {pair[1], POLLIN, 0}};
		long long wait_ms = (due - now) / 1000000LL;
		if (poll(fds, 2, wait_ms < 0 ? 0 : (int)wait_ms + 1) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		pri_event *event;
		if (fds[0].revents & POLLIN && (event = pri_check_event(network_pri)))
			network_event(event);
		if (fds[1].revents & POLLIN && (event = pri_check_event(user_pri)))
			user_event(event);
		if ((event = pri_schedule_run(network_pri)))
			network_event(event);
		if ((event = pri_schedule_run(user_pri)))
			user_event(event);
		now = now_ns();
		for (int i = 0; i < MAX_ACTIONS; i++) {
			if (actions[i].used && actions[i].due_ns <= now) {
				actions[i].used = 0;
				if (actions[i].run)
					actions[i].run(actions[i].index);
				else
					finished = 1;
			}
		}
	}
	fclose(output);
	return 0;
}

/* Ansim Door load generator: a few sensor connections on libmosquitto, paced by one
 * thread, each event's `ts` stamped immediately before it is handed to the socket.
 *
 *   loadgen HOST PORT CAFILE|- RATE SECONDS BOOT SENSORS_FILE OUT_FILE [BURST_RATE BURST_S]
 *
 * SENSORS_FILE: one "sensor_id password" per line (each gets its own connection, client
 * id = username = sensor_id, as the broker requires). Events go round-robin over the
 * sensors at RATE per second for SECONDS (optionally BURST_RATE for BURST_S seconds in the
 * middle), QoS 1, `{"boot":B,"seq":N,"ts":"…Z","type":"open"|"close"}`.
 *
 * OUT_FILE gets one line per event: "sensor_index seq send_us puback_us lag_us" where
 * send_us is the wall-clock time stamped into `ts` (microseconds; `ts` itself carries
 * milliseconds, as sensors send), puback_us when the broker's PUBACK arrived (0: never)
 * and lag_us how late the send was against its schedule: the generator's own distortion.
 * A summary goes to stdout; progress to stderr every second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SENSORS 256
#define MID_SLOTS 65536

typedef struct {
    struct mosquitto *m;
    char id[64];
    pthread_mutex_t lock;
    int64_t slot[MID_SLOTS]; /* mid -> event index, -1 free */
    volatile int connected;
} sensor_t;

typedef struct {
    int sensor;
    int64_t seq;
    int64_t send_us;
    int64_t puback_us;
    int64_t lag_us;
} rec_t;

static sensor_t sensors[MAX_SENSORS];
static rec_t *recs;
static volatile int64_t acked;

static int64_t wall_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void on_connect(struct mosquitto *m, void *ud, int rc) {
    (void)m;
    sensor_t *s = ud;
    if (rc == 0) s->connected = 1;
    else fprintf(stderr, "loadgen: %s refused: %s\n", s->id, mosquitto_connack_string(rc));
}

static void on_publish(struct mosquitto *m, void *ud, int mid) {
    (void)m;
    sensor_t *s = ud;
    int64_t now = wall_us();
    pthread_mutex_lock(&s->lock);
    int64_t idx = s->slot[mid % MID_SLOTS];
    s->slot[mid % MID_SLOTS] = -1;
    pthread_mutex_unlock(&s->lock);
    if (idx >= 0) {
        recs[idx].puback_us = now;
        __sync_fetch_and_add(&acked, 1);
    }
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, int64_t n, double p) {
    if (n == 0) return 0;
    int64_t i = (int64_t)(p * (double)(n - 1));
    return v[i];
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s HOST PORT CAFILE|- RATE SECONDS BOOT SENSORS_FILE OUT_FILE"
                        " [BURST_RATE BURST_S]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    const char *cafile = strcmp(argv[3], "-") ? argv[3] : NULL;
    double rate = atof(argv[4]);
    double seconds = atof(argv[5]);
    long boot = atol(argv[6]);
    double burst_rate = argc > 10 ? atof(argv[9]) : 0, burst_s = argc > 10 ? atof(argv[10]) : 0;

    FILE *sf = fopen(argv[7], "r");
    if (!sf) { perror(argv[7]); return 2; }
    int n = 0;
    char pw[256];
    mosquitto_lib_init();
    while (n < MAX_SENSORS && fscanf(sf, "%63s %255s", sensors[n].id, pw) == 2) {
        sensor_t *s = &sensors[n];
        pthread_mutex_init(&s->lock, NULL);
        for (int i = 0; i < MID_SLOTS; i++) s->slot[i] = -1;
        s->m = mosquitto_new(s->id, true, s);
        mosquitto_int_option(s->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_username_pw_set(s->m, s->id, pw);
        mosquitto_max_inflight_messages_set(s->m, 1000);
        if (cafile && mosquitto_tls_set(s->m, cafile, NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "loadgen: bad CA file %s\n", cafile);
            return 2;
        }
        if (cafile) mosquitto_tls_opts_set(s->m, 1, "tlsv1.2", NULL);
        mosquitto_connect_callback_set(s->m, on_connect);
        mosquitto_publish_callback_set(s->m, on_publish);
        if (mosquitto_connect(s->m, host, port, 60) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "loadgen: cannot connect %s to %s:%d\n", s->id, host, port);
            return 2;
        }
        mosquitto_loop_start(s->m);
        n++;
    }
    fclose(sf);
    if (n == 0) { fprintf(stderr, "loadgen: no sensors\n"); return 2; }
    for (int64_t wait = 0; wait < 1000; wait++) {
        int up = 0;
        for (int i = 0; i < n; i++) up += sensors[i].connected;
        if (up == n) break;
        struct timespec t = {0, 10000000};
        nanosleep(&t, NULL);
    }

    /* the schedule: event k is due at due[k] (ns after start) */
    double burst_from = burst_s > 0 ? (seconds - burst_s) / 2 : seconds;
    int64_t total = (int64_t)(rate * seconds + (burst_rate - rate) * burst_s) + 1;
    recs = calloc((size_t)total, sizeof(rec_t));
    int64_t *seq = calloc(MAX_SENSORS, sizeof(int64_t));
    int64_t start = mono_ns(), k = 0, last_report = start;
    double t = 0;
    while (t < seconds && k < total) {
        double r = (burst_s > 0 && t >= burst_from && t < burst_from + burst_s) ? burst_rate : rate;
        int64_t due = start + (int64_t)(t * 1e9);
        int64_t now = mono_ns();
        if (due > now) {
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        int si = (int)(k % n);
        sensor_t *s = &sensors[si];
        int64_t send = wall_us();
        time_t secs = (time_t)(send / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char payload[160];
        int len = snprintf(payload, sizeof payload,
                           "{\"boot\":%ld,\"seq\":%" PRId64 ",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                           "\"type\":\"%s\"}",
                           boot, seq[si], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                           tm.tm_min, tm.tm_sec, (int)((send / 1000) % 1000),
                           seq[si] % 2 ? "open" : "close");
        char topic[128];
        snprintf(topic, sizeof topic, "ansim/v1/sensors/%s/event", s->id);
        recs[k].sensor = si;
        recs[k].seq = seq[si];
        recs[k].send_us = send;
        recs[k].lag_us = (mono_ns() - due) / 1000;
        int mid = 0;
        pthread_mutex_lock(&s->lock);
        int rc = mosquitto_publish(s->m, &mid, topic, len, payload, 1, false);
        if (rc == MOSQ_ERR_SUCCESS) s->slot[mid % MID_SLOTS] = k;
        pthread_mutex_unlock(&s->lock);
        if (rc != MOSQ_ERR_SUCCESS) fprintf(stderr, "loadgen: publish: %s\n", mosquitto_strerror(rc));
        seq[si]++;
        k++;
        t += 1.0 / r;
        if (now - last_report > 1000000000) {
            fprintf(stderr, "loadgen: sent %" PRId64 ", acknowledged %" PRId64 "\n", k, acked);
            last_report = now;
        }
    }
    double elapsed = (double)(mono_ns() - start) / 1e9;
    for (int w = 0; w < 300 && acked < k; w++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++) {
        mosquitto_disconnect(sensors[i].m);
        mosquitto_loop_stop(sensors[i].m, false);
    }

    FILE *out = fopen(argv[8], "w");
    if (!out) { perror(argv[8]); return 2; }
    int64_t *lag = calloc((size_t)k, sizeof(int64_t)), *ack = calloc((size_t)k, sizeof(int64_t));
    int64_t na = 0;
    for (int64_t i = 0; i < k; i++) {
        fprintf(out, "%d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", recs[i].sensor,
                recs[i].seq, recs[i].send_us, recs[i].puback_us, recs[i].lag_us);
        lag[i] = recs[i].lag_us;
        if (recs[i].puback_us) ack[na++] = recs[i].puback_us - recs[i].send_us;
    }
    fclose(out);
    qsort(lag, (size_t)k, sizeof(int64_t), cmp64);
    qsort(ack, (size_t)na, sizeof(int64_t), cmp64);
    printf("sent %" PRId64 " acked %" PRId64 " in %.2f s (%.0f/s offered)\n", k, na, elapsed,
           (double)k / elapsed);
    printf("send lag us p50 %" PRId64 " p99 %" PRId64 " max %" PRId64 "\n", pct(lag, k, .5),
           pct(lag, k, .99), k ? lag[k - 1] : 0);
    printf("puback us p50 %" PRId64 " p99 %" PRId64 "\n", pct(ack, na, .5), pct(ack, na, .99));
    mosquitto_lib_cleanup();
    return na == k ? 0 : 1;
}

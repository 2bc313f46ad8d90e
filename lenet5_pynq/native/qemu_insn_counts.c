/* A qemu-user TCG plugin counting the instructions a program executes, by mnemonic and the kind
 * of its first operand ("vmla.f32 q", "fmul v.4s", "ldr r"), for lenet5_pynq.native.cross.
 *
 *     qemu-arm -plugin ./qemu_insn_counts.so -d plugin -D COUNTS program args...
 *
 * COUNTS gets one line per key, "count<TAB>mnemonic<TAB>operand kind", once the program exits.
 * The disassembly is qemu's (capstone).  Counts are exact for a single-threaded program.  Built
 * against qemu's plugin API version 1 (qemu 4.2 to 8.x), declared here to need no qemu headers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

#define MAX_KEYS 4096
#define KEY_LEN 48
static char keys[MAX_KEYS][KEY_LEN];
static uint64_t counts[MAX_KEYS];
static int n_keys;

/* "vmla.f32 q8, q9, d0[0]" -> "vmla.f32\tq"; "fmul v0.4s, v1.4s" -> "fmul\tv.4s": the mnemonic,
 * then the first operand with the register number dropped. */
static void key_of(const char *text, char *key) {
    int k = 0;
    while (*text == ' ' || *text == '\t') ++text;
    while (*text && *text != ' ' && *text != '\t' && k < KEY_LEN / 2) key[k++] = *text++;
    key[k++] = '\t';
    while (*text == ' ' || *text == '\t') ++text;
    for (int after_letter = 0; *text && *text != ',' && *text != ' ' && k < KEY_LEN - 1; ++text) {
        if (after_letter && *text >= '0' && *text <= '9') continue;
        after_letter = (*text >= 'a' && *text <= 'z') || (*text >= 'A' && *text <= 'Z');
        key[k++] = *text;
    }
    key[k] = '\0';
}

/* The counter of a key, a new one if need be; the last slot collects what does not fit. */
static uint64_t *counter(const char *key) {
    for (int i = 0; i < n_keys; ++i)
        if (!strcmp(keys[i], key)) return &counts[i];
    if (n_keys == MAX_KEYS - 1) {
        strcpy(keys[n_keys], "(other)\t");
        return &counts[n_keys];
    }
    strcpy(keys[n_keys], key);
    return &counts[n_keys++];
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    for (size_t i = 0, n = qemu_plugin_tb_n_insns(tb); i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *text = qemu_plugin_insn_disas(insn), key[KEY_LEN];
        key_of(text ? text : "?", key);
        free(text);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, counter(key), 1);
    }
}

static void finished(qemu_plugin_id_t id, void *userdata) {
    (void)id, (void)userdata;
    char line[KEY_LEN + 32];
    for (int i = 0; i <= n_keys && i < MAX_KEYS; ++i)
        if (counts[i]) {
            snprintf(line, sizeof line, "%llu\t%.47s\n", (unsigned long long)counts[i], keys[i]);
            qemu_plugin_outs(line);
        }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
    (void)info, (void)argc, (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, finished, NULL);
    return 0;
}

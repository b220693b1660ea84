# Native build of the C parts for this machine: the simulated secure world
# (GP Internal Core API over OpenSSL + the unmodified TA sources, in its own
# process), the libteec-compatible simulated client library, our client
# library, the C command-line client and the C tests.
#
#   make            -> build/host/
#   make SAN=1      -> build/host-asan/ (AddressSanitizer + UBSan)
#   make test-c     -> build, then run every C test (vectors from tests/vectors)
#   make fuzz       -> build/fuzz/: libFuzzer harnesses of the TA's parsers (clang)
#
# The TA for a real OP-TEE is built by ta/Makefile with OP-TEE's TA dev kit.

SAN ?=
ifeq ($(SAN),1)
BUILD ?= build/host-asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD ?= build/host
SANFLAGS :=
endif

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) -fPIC -fvisibility=hidden
LDFLAGS_SAN := $(SANFLAGS)

# Secure world side: TA sources exactly as listed for OP-TEE's dev kit.
srcs-y :=
include ta/sub.mk
TA_SRCS := $(addprefix ta/,$(srcs-y))
TA_INC := -Ita/include -Ita -Ihost/sim/include
GP_SRCS := $(wildcard host/sim/gp/*.c)
GP_INC := -Ihost/sim/include -Ihost/sim/gp

# Normal world side.
TEEC_INC := -Ihost/sim/include
CLIENT_INC := -Ihost/include -Ita/include $(TEEC_INC)

obj = $(BUILD)/obj/$(basename $(1)).o
TA_OBJS := $(foreach s,$(TA_SRCS),$(call obj,$(s)))
GP_OBJS := $(foreach s,$(GP_SRCS),$(call obj,$(s)))
SW_MAIN_OBJ := $(call obj,host/sim/sw_main.c)
SIM_IPC_OBJ := $(call obj,host/sim/sim_ipc.c)
# The TA's properties (user_ta_header_defines.h); test TAs define their own.
TA_PROPS_OBJ := $(call obj,host/sim/ta_props.c)

GP_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/gp_test_*.c))
TA_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/ta_test_*.c))
CLIENT_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/client_test_*.c))
SIM_TEST_TAS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/sim_ta_*.c))

PRODUCTS := $(BUILD)/edge-sim-tee $(BUILD)/libteec_sim.so \
	$(BUILD)/libedge_client.so $(BUILD)/edge-ta-cli
# The broker's retain plugin (deploy/mosquitto/edge_retain.c) is loaded by an
# unsanitized mosquitto, so it has no sanitizer variant.
ifneq ($(SAN),1)
PRODUCTS += $(BUILD)/mosquitto_edge_retain.so
endif

.PHONY: all test-c clean
all: $(PRODUCTS) $(GP_TESTS) $(TA_TESTS) $(CLIENT_TESTS) $(SIM_TEST_TAS)

$(BUILD)/obj/ta/%.o: ta/%.c ta/include/edge_ta.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TA_INC) -MMD -c $< -o $@

$(BUILD)/obj/host/sim/gp/%.o: host/sim/gp/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(GP_INC) -MMD -c $< -o $@

$(BUILD)/obj/host/sim/%.o: host/sim/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(GP_INC) -Ita/include -Ita -MMD -c $< -o $@

$(BUILD)/obj/host/%.o: host/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CLIENT_INC) -MMD -c $< -o $@

$(BUILD)/obj/tests/c/%.o: tests/c/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CLIENT_INC) $(GP_INC) -Ita -MMD -c $< -o $@

$(BUILD)/libgp_sim.a: $(GP_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The simulated secure world: one process per TEEC_Context.
$(BUILD)/edge-sim-tee: $(SW_MAIN_OBJ) $(SIM_IPC_OBJ) $(TA_PROPS_OBJ) $(TA_OBJS) $(BUILD)/libgp_sim.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lcrypto -lm

# libteec-compatible client library of the simulated secure world.
# nodelete: it keeps a helper thread (see spawn() in libteec_sim.c), whose
# code must stay mapped even if a caller dlclose()s the library.
$(BUILD)/libteec_sim.so: $(call obj,host/sim/libteec_sim.c) $(SIM_IPC_OBJ)
	$(CC) $(LDFLAGS_SAN) -shared -Wl,-soname,libteec_sim.so -Wl,-z,nodelete \
		-o $@ $^ -lpthread -ldl

# Our client library. TEEC_* symbols stay undefined on purpose: they resolve
# against whichever libteec the process loaded first (the real one or
# libteec_sim.so), which is how the daemon picks its backend.
$(BUILD)/libedge_client.so: $(call obj,host/edge_client.c)
	$(CC) $(LDFLAGS_SAN) -shared -Wl,-soname,libedge_client.so -o $@ $^

$(BUILD)/edge-ta-cli: $(call obj,host/edge_ta_cli.c) $(BUILD)/libedge_client.so $(BUILD)/libteec_sim.so
	$(CC) $(LDFLAGS_SAN) -o $@ $(call obj,host/edge_ta_cli.c) \
		-L$(BUILD) -ledge_client -lteec_sim -Wl,-rpath,'$$ORIGIN'

# Plugin entry points must stay visible (mosquitto_plugin.h exports nothing on
# Linux); mosquitto_* calls resolve against the broker that loads it.
$(BUILD)/mosquitto_edge_retain.so: deploy/mosquitto/edge_retain.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(CFLAGS) $(WARN) -fPIC -shared -o $@ $<

$(BUILD)/tests/gp_test_%: $(BUILD)/obj/tests/c/gp_test_%.o $(BUILD)/libgp_sim.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lcrypto -lm

$(BUILD)/tests/ta_test_%: $(BUILD)/obj/tests/c/ta_test_%.o $(filter-out %/entry.o,$(TA_OBJS)) $(BUILD)/libgp_sim.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lcrypto -lm

$(BUILD)/tests/client_test_%: $(BUILD)/obj/tests/c/client_test_%.o $(BUILD)/libedge_client.so $(BUILD)/libteec_sim.so
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $< -L$(BUILD) -ledge_client -lteec_sim \
		-Wl,-rpath,'$$ORIGIN/..' -lpthread

# Small test TAs that exercise the simulator itself (crashes, short buffers).
$(BUILD)/tests/sim_ta_%: $(BUILD)/obj/tests/c/sim_ta_%.o $(SW_MAIN_OBJ) $(SIM_IPC_OBJ) $(BUILD)/libgp_sim.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lcrypto -lm

test-c: all
	@set -e; for t in $(GP_TESTS) $(TA_TESTS) $(CLIENT_TESTS); do \
		echo "== $$t"; EDGE_SIM_TEE=$(BUILD)/edge-sim-tee $$t tests/vectors; done

clean:
	rm -rf build/host build/host-asan build/fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
.SECONDARY:

# ---------------------------------------------------------------------------
# libFuzzer harnesses of the TA's parsers (tests/fuzz/, docs/fuzzing.md): the
# same TA sources (ta/sub.mk; fuzz_commands compiles entry.c into itself)
# and the simulator's GP layer, compiled
# again by clang with coverage instrumentation, ASan and UBSan, and linked
# with libFuzzer's main into build/fuzz/fuzz_<parser>. The harnesses read
# keys.tsv and a few packages from this checkout's tests/vectors (override
# with EDGE_FUZZ_VECTORS at run time).
FUZZ_CC ?= clang
FUZZ_BUILD := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -O1 -g $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer
FUZZ_HARNESSES := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,\
	$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))
fuzz_obj = $(FUZZ_BUILD)/obj/$(basename $(1)).o
FUZZ_TA_OBJS := $(foreach s,$(filter-out ta/entry.c,$(TA_SRCS)),$(call fuzz_obj,$(s)))
FUZZ_GP_OBJS := $(foreach s,$(GP_SRCS),$(call fuzz_obj,$(s)))
FUZZ_COMMON_OBJ := $(call fuzz_obj,tests/fuzz/fuzz_common.c)
FUZZ_HINT := install clang and its libFuzzer runtime: scripts/setup.sh \
	--with-sanitizers (Debian 12: apt-get install clang libclang-rt-14-dev)

.PHONY: fuzz fuzz-toolchain
fuzz: fuzz-toolchain $(FUZZ_HARNESSES)

# Fails early, naming the fix, when clang or libclang_rt.fuzzer is missing.
fuzz-toolchain:
	@mkdir -p $(FUZZ_BUILD)
	@command -v $(FUZZ_CC) >/dev/null || \
		{ echo "make fuzz: $(FUZZ_CC) not found; $(FUZZ_HINT)" >&2; exit 1; }
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' \
		> $(FUZZ_BUILD)/probe.c
	@$(FUZZ_CC) $(FUZZ_LDFLAGS) $(FUZZ_BUILD)/probe.c -o $(FUZZ_BUILD)/probe \
		2>$(FUZZ_BUILD)/probe.log || \
		{ cat $(FUZZ_BUILD)/probe.log >&2; \
		  echo "make fuzz: $(FUZZ_CC) cannot link -fsanitize=fuzzer; $(FUZZ_HINT)" >&2; \
		  exit 1; }

# The field arithmetic of the strict Ed25519 checks runs on every signature
# check; with comparison tracing it took three quarters of each run. Edge
# coverage of the file stays.
$(FUZZ_BUILD)/obj/ta/ed25519_strict.o: FUZZ_CFLAGS += -fno-sanitize-coverage=trace-cmp

$(FUZZ_BUILD)/obj/ta/%.o: ta/%.c ta/include/edge_ta.h | fuzz-toolchain
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(TA_INC) -MMD -c $< -o $@

$(FUZZ_BUILD)/obj/host/sim/gp/%.o: host/sim/gp/%.c | fuzz-toolchain
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(GP_INC) -MMD -c $< -o $@

$(FUZZ_BUILD)/obj/tests/fuzz/%.o: tests/fuzz/%.c tests/fuzz/fuzz_common.h | fuzz-toolchain
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(TA_INC) $(GP_INC) \
		-DEDGE_FUZZ_VECTORS='"$(CURDIR)/tests/vectors"' -MMD -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_COMMON_OBJ) \
		$(FUZZ_TA_OBJS) $(FUZZ_GP_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ -lcrypto -lm

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------------------
# Cross build of the normal-world client for arm64 (the QEMU OP-TEE image,
# boards): against the REAL libteec headers and library of Debian's
# optee-client-dev/libteec2, unpacked under ARM64_SYSROOT by
# scripts/qemu/build.sh. libedge_client.so stays unlinked to libteec (same
# reason as above); edge-ta-cli links -lteec (libteec.so.2) and finds
# libedge_client.so next to itself.
#
#   make arm64-client [ARM64_SYSROOT=build/qemu/stage] [ARM64_BUILD=build/arm64]
# The prefix maps keep the checkout's and the sysroot's paths out of the debug
# info, so the bytes do not depend on where the tree or the image build lives.
ARM64_SYSROOT ?= build/qemu/stage
ARM64_CC ?= aarch64-linux-gnu-gcc
ARM64_BUILD ?= build/arm64
ARM64_CFLAGS := -std=gnu11 -O2 -g $(WARN) -fPIC -fvisibility=hidden \
	-ffile-prefix-map=$(CURDIR)=. -ffile-prefix-map=$(ARM64_SYSROOT)=/sysroot \
	-Ihost/include -Ita/include -I$(ARM64_SYSROOT)/usr/include
ARM64_TEEC_LIBDIR := $(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu

.PHONY: arm64-client
arm64-client: $(ARM64_BUILD)/libedge_client.so $(ARM64_BUILD)/edge-ta-cli

$(ARM64_BUILD)/obj/%.o: host/%.c host/include/edge_client.h ta/include/edge_ta.h \
		$(ARM64_SYSROOT)/usr/include/tee_client_api.h
	@mkdir -p $(dir $@)
	$(ARM64_CC) $(ARM64_CFLAGS) -c $< -o $@

$(ARM64_BUILD)/libedge_client.so: $(ARM64_BUILD)/obj/edge_client.o
	$(ARM64_CC) -shared -Wl,-soname,libedge_client.so -o $@ $^

# --allow-shlib-undefined: trixie's libteec.so.2 needs a newer glibc than the
# cross toolchain's; the guest provides it.
$(ARM64_BUILD)/edge-ta-cli: $(ARM64_BUILD)/obj/edge_ta_cli.o $(ARM64_BUILD)/libedge_client.so
	$(ARM64_CC) -o $@ $< -L$(ARM64_BUILD) -ledge_client \
		-L$(ARM64_TEEC_LIBDIR) -lteec -Wl,--allow-shlib-undefined \
		-Wl,-rpath,'$$ORIGIN'

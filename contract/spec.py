"""The one hand-edited description of the edge TA / client / Python contract.

Edit this file, then run ``python -m contract.generate``: it rewrites
ta/include/edge_ta.h, host/edge_results.h, edge/tee_abi.py,
edge/formats/layouts.py, the exception classes of edge/errors.py and the
field tables of docs/formats.md. Nothing else states these facts.
"""

from __future__ import annotations

from contract.model import (
    Command,
    Constant,
    Enum,
    Field,
    Layout,
    Member,
    Param,
    Refusal,
    Result,
    Tail,
)

TA_UUID = "5441d9b6-a634-4050-9731-e70ae47dd281"
# Bumped when a command's parameters or an output layout change.
ABI_VERSION = 2
MAGIC = b"EDGE"
FORMAT_VERSION = 1
# Kinds whose layout moved past FORMAT_VERSION: an envelope of such a kind must carry its
# own version, so the old layout is refused as unsupported-version, by name.
# PRIVACY_POLICY 2: the steps -> epsilon table (issue 12). ROUND_TICKET and SEALED_UPDATE 2:
# they carry the package id of the model they train (issue 15), so a ticket for another
# package "v1" is wrong-model; the ticket also gained the secure-aggregation fields (issue 11).
# PACKAGE 2: no recipient list, a key wrap per device instead (issue 14; format 1 is refused
# as retired-format).
KIND_FORMAT_VERSIONS = {"PRIVACY_POLICY": 2, "ROUND_TICKET": 2, "SEALED_UPDATE": 2,
                        "PACKAGE": 2}

COMMANDS: tuple[Command, ...] = (
    Command("GET_IDENTITY", 0,
            "creates the device identity (Ed25519) and key-agreement\n"
            "(X25519) key pairs in secure storage on first use.",
            (Param("MEMREF_OUTPUT", 'device record (docs/formats.md "Device record"),\n'
                   "EDGE_DEVICE_RECORD_SIZE bytes"),)),
    Command("GET_STATUS", 1, "read-only; never creates anything.",
            (Param("MEMREF_OUTPUT", "status block, EDGE_STATUS_SIZE bytes (layout below)"),)),
    Command("INSTALL_ANCHORS", 2, "provisioning, allowed once.",
            (Param("MEMREF_INPUT", "model-signer Ed25519 public key (32) ||\n"
                   "aggregator Ed25519 public key (32)"),)),
    Command("REPLACE_ANCHOR", 3,
            "replaces one anchor under a statement signed by its\n"
            'current key (docs/formats.md "Anchor statement").',
            (Param("MEMREF_INPUT", "signed anchor statement"),)),
    Command("LOAD_BEGIN", 4,
            "verifies a model package manifest (signature, anti-rollback)\n"
            "and this device's key wrap (signature, device, package id and manifest\n"
            "digest), unwraps the content key and decrypts the head into a pending\n"
            "slot. Nothing is committed until LOAD_FINISH. Replaces any pending load.",
            (Param("MEMREF_INPUT", "signed manifest (the package up to its backbone)"),
             Param("VALUE_OUTPUT", "a = chunk count, b = manifest flags"),
             Param("VALUE_OUTPUT", "a = chunk size in bytes (0 without backbone),\n"
                   "b = bytes of the last stored chunk"),
             Param("MEMREF_INPUT", 'signed key wrap for this device (docs/formats.md\n'
                   '"Key wrap"), EDGE_KEY_WRAP_SIZE bytes'))),
    Command("LOAD_CHUNK", 5,
            "checks stored backbone chunk `index` (in order, from 0) against\n"
            "the digest the signed manifest lists, then returns its plaintext.",
            (Param("VALUE_INPUT", "a = chunk index"),
             Param("MEMREF_INPUT", "stored chunk (ciphertext || tag when encrypted)"),
             Param("MEMREF_OUTPUT", "verified plaintext chunk"))),
    Command("LOAD_FINISH", 6,
            "after every chunk passed, atomically records the new version\n"
            "and head in secure storage and makes the head active.",
            (Param("VALUE_OUTPUT", "a = version low 32 bits, b = version high 32 bits"),)),
    Command("LOAD_ABORT", 7, "drops a pending load. No parameters."),
    Command("INFER", 8,
            "what the active package lets the normal world see of\n"
            'features . W + b (docs/formats.md "Inference release"): the scores, the\n'
            "k best labels, or the label only; each row is charged to the model\n"
            "version's query budget in secure storage before anything is released.",
            (Param("VALUE_INOUT", "in: a = batch size n; out: a = release\n"
                   "(EDGE_INFER_*), b = rows left in the query budget\n"
                   "(0xFFFFFFFF: no budget)"),
             Param("MEMREF_INPUT", "features, float32 little-endian, n x head_in"),
             Param("MEMREF_OUTPUT", "scores: float32 little-endian, n x head_out;\n"
                   "top-k: uint32 LE labels, n x k, best first;\n"
                   "label: uint32 LE, n"))),
    Command("VERIFY_TICKET", 9,
            'checks a round ticket (docs/formats.md "Round ticket")\n'
            "against the aggregator anchor, the loaded model, the replay and time\n"
            "floors and the privacy policy; on success the session holds it for one\n"
            "TRAIN_AND_SEAL. Changes no stored state.",
            (Param("MEMREF_INPUT", "signed round ticket"),
             Param("VALUE_INPUT", "a = REE time (Unix seconds) low 32 bits, b = high"),
             Param("VALUE_OUTPUT", "a = steps left in the budget (saturated to 2^32-1),\n"
                   "b = steps this ticket takes per example count\n"
                   "    (Poisson sampling; 0 when it depends on n)"))),
    Command("TRAIN_AND_SEAL", 10,
            "DP-SGD on the head with the held ticket, budget spent in\n"
            "secure storage before anything is released, returns the sealed update.",
            (Param("VALUE_INPUT", "a = example count n"),
             Param("MEMREF_INPUT", "features, float32 little-endian, n x head_in"),
             Param("MEMREF_INPUT", "labels, uint32 little-endian, n (each < head_out)"),
             Param("MEMREF_OUTPUT", 'sealed update (docs/formats.md "Sealed update")'))),
    Command("BUDGET_STATUS", 11, "read-only.",
            (Param("MEMREF_OUTPUT", "budget block, EDGE_BUDGET_SIZE bytes (layout below)"),)),
    Command("INSTALL_POLICY", 12,
            "installs or replaces the privacy policy; it must be signed\n"
            "by the model-signer anchor and carry a policy version above the stored one.",
            (Param("MEMREF_INPUT", 'signed privacy policy (docs/formats.md "Privacy policy")'),)),
    # Secure aggregation (docs/secagg.md): one round's device side, run inside the TA.
    Command("SECAGG_ADVERTISE", 13,
            "after VERIFY_TICKET's checks of a secure-aggregation ticket,\n"
            "makes this round's X25519 c- and s-key pairs (secure storage) and returns\n"
            "their public halves in an advert signed by the identity key. Asked again\n"
            "for the same round before SECAGG_SHARE, returns the same advert.",
            (Param("MEMREF_INPUT", "signed round ticket (update mode SECAGG)"),
             Param("VALUE_INPUT", "a = REE time (Unix seconds) low 32 bits, b = high"),
             Param("MEMREF_OUTPUT", 'secure-aggregation advert (docs/formats.md\n'
                   '"Secure-aggregation advert"), EDGE_SECAGG_ADVERT_SIZE bytes'))),
    Command("SECAGG_SHARE", 14,
            "verifies the aggregator-signed roster, the certificates of\n"
            "this device's neighbours (registrar anchor) and their adverts (certified\n"
            "identity keys), Shamir-shares the self-mask seed and the s-secret key\n"
            "among them (threshold t) and returns the shares encrypted to each.",
            (Param("MEMREF_INPUT", "aggregator-signed directive, stage ROSTER"),
             Param("MEMREF_OUTPUT", "device-signed shares bundle"))),
    Command("SECAGG_RECEIVE", 15,
            "decrypts and keeps the shares the neighbours that shared (U2)\n"
            "sent to this device; their set decides the pairwise masks.",
            (Param("MEMREF_INPUT", "aggregator-signed directive, stage INBOX"),)),
    Command("SECAGG_UNMASK", 16,
            "records the survivor list U3 in secure storage, then reveals\n"
            "for each neighbour in U2 its self-seed share (survivor) or its s-key share\n"
            "(dropped); a second, different list for the round is refused.",
            (Param("MEMREF_INPUT", "aggregator-signed directive, stage SURVIVORS"),
             Param("MEMREF_OUTPUT", "device-signed reveals"))),
    Command("INSTALL_REGISTRAR", 17,
            "provisioning, allowed once (after INSTALL_ANCHORS): the\n"
            "registrar key that signs enrollment certificates; replaced later only by\n"
            "an anchor statement of role REGISTRAR.",
            (Param("MEMREF_INPUT", "registrar Ed25519 public key (32)"),)),
    Command("SIGN_SKIP", 18,
            'signs a skip report (docs/formats.md "Skip report") for an\n'
            "authentic round ticket this device does not train: the TA runs\n"
            "VERIFY_TICKET's checks (and, given an example count, TRAIN_AND_SEAL's step\n"
            "and budget checks) and names the first refusal with its field and both\n"
            "values; a normal-world reason (no samples, an unusable backbone) is carried\n"
            "as stated. Changes no stored state and holds no ticket.",
            (Param("MEMREF_INPUT", "signed round ticket"),
             Param("VALUE_INPUT", "a = REE time (Unix seconds) low 32 bits, b = high"),
             Param("MEMREF_OUTPUT", "skip report, EDGE_SKIP_REPORT_SIZE bytes"),
             Param("VALUE_INOUT", "in: a = normal-world reason (EDGE_SKIP_REE_*),\n"
                   "    b = example count n (0: not known);\n"
                   "out: a = the TA's refusal (0: the TA would train),\n"
                   "     b = field (EDGE_SKIP_FIELD_*)"))),
)

# Every exception class of edge.errors, in definition order (a base first).
REFUSALS: tuple[Refusal, ...] = (
    Refusal("Malformed", "EdgeError", "malformed",
            "An artefact is truncated, has trailing bytes, bad magic or bad fields."),
    Refusal("UnsupportedVersion", "Malformed", "unsupported-version",
            "An artefact's format version is not one this build understands."),
    Refusal("WrongKind", "Malformed", "wrong-kind",
            "An artefact of another kind was given (a ticket where a package goes)."),
    Refusal("Oversized", "EdgeError", "oversized",
            "An artefact or input is over a documented limit."),
    Refusal("SignatureInvalid", "EdgeError", "signature",
            "A signature does not verify under the expected key."),
    Refusal("WeakKey", "EdgeError", "weak-key",
            "A public key that is off the curve, non-canonical or of small order."),
    Refusal("UnknownSigner", "EdgeError", "unknown-signer",
            "An artefact names a signer key that is not the expected anchor."),
    Refusal("Tampered", "EdgeError", "tampered",
            "An authenticated ciphertext (wrapped key, head, backbone chunk) failed its tag."),
    Refusal("ChunkDigestMismatch", "Tampered", "chunk-digest",
            "A backbone chunk differs from the digest listed in the signed manifest."),
    Refusal("Rollback", "EdgeError", "rollback",
            "A model version not above the one recorded in secure storage."),
    Refusal("NotForThisDevice", "EdgeError", "not-for-this-device",
            "A package has no content key addressed to this device."),
    Refusal("WrongPackage", "EdgeError", "wrong-package",
            "A key wrap bound to another package (package id or manifest digest differ)."),
    Refusal("RetiredFormat", "UnsupportedVersion", "retired-format",
            "A retired format version (a version-1 model package, its recipient list)."),
    Refusal("StaleStatement", "EdgeError", "stale-statement",
            "An anchor statement whose epoch is not the next one (replayed or skipped)."),
    Refusal("NotProvisioned", "EdgeError", "not-provisioned",
            "The TA has no trust anchors yet; run ``edge tee provision``."),
    Refusal("AlreadyProvisioned", "EdgeError", "already-provisioned",
            "Trust anchors are installed already; replace them with a signed statement."),
    Refusal("NoModel", "EdgeError", "no-model",
            "No model package has been loaded into the TA yet."),
    Refusal("BadState", "EdgeError", "bad-state",
            "A command came out of order (a chunk without a begun load, say)."),
    Refusal("Expired", "EdgeError", "expired",
            "A round ticket whose deadline has passed (REE time or the TA's time floor)."),
    Refusal("Replay", "EdgeError", "replay",
            "A round ticket for a round not above the last round this device sealed."),
    Refusal("WrongModel", "EdgeError", "wrong-model",
            "A round ticket for another model (version or package id) than the one loaded."),
    Refusal("PolicyViolation", "EdgeError", "weaker-than-policy",
            "A ticket or round weaker than the device's privacy policy allows."),
    Refusal("InferenceDisabled", "EdgeError", "infer-disabled",
            "The active package releases nothing of the head to INFER."),
    Refusal("BudgetExhausted", "EdgeError", "budget-exhausted",
            "The privacy budget cannot cover the steps a round would take."),
    Refusal("NoPolicy", "EdgeError", "no-policy",
            "No privacy policy is installed; install one with a signed policy."),
    Refusal("WrongRound", "EdgeError", "wrong-round",
            "A secure-aggregation message bound to another fleet, round or model."),
    Refusal("TooFewSurvivors", "EdgeError", "too-few-survivors",
            "Fewer than the threshold t of devices remain to finish a secure-aggregation "
            "round."),
    Refusal("ShareConflict", "EdgeError", "share-conflict",
            "A second, different survivor list (or message) for a secagg round."),
    Refusal("UnknownEnrollment", "EdgeError", "unknown-enrollment",
            "An enrollment certificate not from the registrar, or for another fleet."),
    Refusal("ForgedAdvert", "EdgeError", "forged-advert",
            "A secure-aggregation advert not signed by the device's certified identity key."),
    Refusal("NoiseShareBelowPolicy", "PolicyViolation", "noise-share-below-policy",
            "A ticket whose update would lack the policy's distributed-DP noise share."),
    Refusal("NoiseShareUnfit", "EdgeError", "noise-share-unfit",
            "A secagg round with no 32-bit headroom (or sampler range) for the noise share."),
    Refusal("NothingToReport", "EdgeError", "nothing-to-report",
            "A skip report was asked for a ticket the TA would train on, with no reason."),
    Refusal("TeeError", "EdgeError", "tee",
            "The TEE or its client library failed (not a refusal of the input)."),
    Refusal("BackboneNotPublished", "TeeError", "backbone-not-published",
            "The TA committed a package but its backbone could not be moved into place.",
            attrs=(("partial", "Path"),)),
    Refusal("TeeUnavailable", "TeeError", "tee-unavailable",
            "The TEE backend cannot be opened (library, device or TA missing)."),
    Refusal("TeeDead", "TeeError", "tee-dead",
            "The trusted application died (panic or crash); open a new session."),
    Refusal("ConfigError", "EdgeError", "config",
            "A configuration file or command-line value is invalid; names the key."),
    Refusal("StateError", "EdgeError", "state",
            "A state file (database, metrics) cannot be opened, read or written; names the file."),
    Refusal("ModelMismatch", "Malformed", "model-mismatch",
            "A model's input/output types or shapes differ from its package metadata."),
    Refusal("UnverifiedModel", "ConfigError", "unverified-model",
            "A model file that did not pass the TA's verification, "
            "without the development opt-in."),
    Refusal("DelegateUnavailable", "ConfigError", "delegate",
            "A required NPU delegate failed to load or left part of the graph on the CPU."),
    Refusal("ModelNotPublished", "EdgeError", "model-not-published",
            "The aggregator's newest model never reached the broker (no PUBACK) "
            "in the time allowed."),
    Refusal("ConsoleError", "EdgeError", "console",
            "A board's serial console did not answer as expected (no login, no marker, "
            "timeout)."),
    Refusal("ConsoleLost", "ConsoleError", "console-lost",
            "The serial console went away mid-command; run again to resume where it "
            "stopped."),
    Refusal("TransferCorrupt", "EdgeError", "transfer-corrupt",
            "A file sent over a console arrived with another checksum than the one sent."),
    Refusal("BoardMismatch", "EdgeError", "board-mismatch",
            "A board reports another bundle version, or a state the operator did not ask "
            "for."),
)

# TEE results: GP codes the TA and client use, then edge's own, in the order
# of docs/formats.md's refusal table where documented. GlobalPlatform leaves
# 0x00000001..0xEFFFFFFF to TAs.
RESULTS: tuple[Result, ...] = (
    Result("TEE_SUCCESS", 0x00000000, "success", gp=True),
    Result("TEE_ERROR_GENERIC", 0xFFFF0000, "generic error", gp=True),
    Result("TEE_ERROR_ACCESS_DENIED", 0xFFFF0001, "access denied", gp=True),
    Result("TEE_ERROR_BAD_FORMAT", 0xFFFF0005, "bad format", "Malformed",
           documented=True, gp=True),
    Result("EDGE_ERR_UNSUPPORTED_VERSION", 0xED6E0008, "unsupported format version",
           "UnsupportedVersion", "format version unknown", documented=True),
    Result("EDGE_ERR_WRONG_KIND", 0xED6E0009, "wrong artefact kind", "WrongKind",
           "artefact of another kind", documented=True),
    Result("TEE_ERROR_EXCESS_DATA", 0xFFFF0004, "excess data", "Oversized",
           documented=True, gp=True),
    Result("EDGE_ERR_UNKNOWN_SIGNER", 0xED6E0003, "unknown signer", "UnknownSigner",
           "key id is not the anchor", documented=True),
    Result("TEE_ERROR_SIGNATURE_INVALID", 0xFFFF3072, "signature invalid",
           "SignatureInvalid", documented=True, gp=True),
    Result("TEE_ERROR_MAC_INVALID", 0xFFFF3071, "MAC invalid", "Tampered",
           documented=True, gp=True),
    Result("EDGE_ERR_CHUNK_DIGEST", 0xED6E000A, "chunk digest mismatch",
           "ChunkDigestMismatch", "chunk differs from manifest", documented=True),
    Result("EDGE_ERR_ROLLBACK", 0xED6E0001, "rollback", "Rollback",
           "version not above stored", documented=True),
    Result("EDGE_ERR_NOT_FOR_DEVICE", 0xED6E0002, "not for this device", "NotForThisDevice",
           "no recipient entry for us", documented=True),
    Result("EDGE_ERR_WRONG_PACKAGE", 0xED6E001E, "key wrap for another package",
           "WrongPackage", "wrap bound to another package", documented=True),
    Result("EDGE_ERR_RETIRED_FORMAT", 0xED6E001F, "retired format version", "RetiredFormat",
           "v1 package (recipient list)", documented=True),
    Result("EDGE_ERR_STALE_STATEMENT", 0xED6E0007, "stale statement", "StaleStatement",
           "statement epoch not next", documented=True),
    Result("EDGE_ERR_NOT_PROVISIONED", 0xED6E0004, "not provisioned", "NotProvisioned",
           "no trust anchors yet", documented=True),
    Result("EDGE_ERR_ALREADY_PROVISIONED", 0xED6E0005, "already provisioned",
           "AlreadyProvisioned", "anchors already set", documented=True),
    Result("EDGE_ERR_NO_MODEL", 0xED6E0006, "no model loaded", "NoModel",
           "no head loaded", documented=True),
    Result("TEE_ERROR_BAD_STATE", 0xFFFF0007, "bad state", "BadState",
           documented=True, gp=True),
    Result("EDGE_ERR_EXPIRED", 0xED6E000B, "expired", "Expired",
           "ticket deadline passed", documented=True),
    Result("EDGE_ERR_REPLAY", 0xED6E000C, "replay", "Replay",
           "round not above last sealed", documented=True),
    Result("EDGE_ERR_WRONG_MODEL", 0xED6E000D, "wrong model", "WrongModel",
           "ticket for another version or package", documented=True),
    Result("EDGE_ERR_POLICY_VIOLATION", 0xED6E000E, "weaker than policy", "PolicyViolation",
           "weaker than the policy", documented=True),
    Result("EDGE_ERR_BUDGET_EXHAUSTED", 0xED6E000F, "budget exhausted", "BudgetExhausted",
           "steps exceed what is left", documented=True),
    Result("EDGE_ERR_NO_POLICY", 0xED6E0010, "no privacy policy", "NoPolicy",
           "no privacy policy yet", documented=True),
    Result("EDGE_ERR_WEAK_KEY", 0xED6E0011, "weak key", "WeakKey",
           "key off-curve/small order", documented=True),
    Result("EDGE_ERR_INFER_DISABLED", 0xED6E0012, "inference not released",
           "InferenceDisabled", "package releases no INFER", documented=True),
    Result("EDGE_ERR_WRONG_ROUND", 0xED6E0013, "wrong secagg round", "WrongRound",
           "other fleet/round/nonce/model", documented=True),
    Result("EDGE_ERR_TOO_FEW_SURVIVORS", 0xED6E0014, "too few survivors", "TooFewSurvivors",
           "fewer than t survivors", documented=True),
    Result("EDGE_ERR_SHARE_CONFLICT", 0xED6E0015, "share conflict", "ShareConflict",
           "second survivor list", documented=True),
    Result("EDGE_ERR_UNKNOWN_ENROLLMENT", 0xED6E0016, "unknown enrollment",
           "UnknownEnrollment", "cert not from the registrar", documented=True),
    Result("EDGE_ERR_FORGED_ADVERT", 0xED6E0017, "forged advert", "ForgedAdvert",
           "advert not by certified key", documented=True),
    Result("EDGE_ERR_NOISE_SHARE_BELOW_POLICY", 0xED6E001B, "noise share below policy",
           "NoiseShareBelowPolicy", "no distributed-DP noise share", documented=True),
    Result("EDGE_ERR_NOISE_SHARE_UNFIT", 0xED6E001C, "noise share unfit", "NoiseShareUnfit",
           "no room for the noise share", documented=True),
    Result("EDGE_ERR_NOTHING_TO_REPORT", 0xED6E0018, "nothing to report", "NothingToReport",
           "ticket acceptable, no reason", documented=True),
    # Wrong parameter types or sizes: the caller's input, so malformed.
    Result("TEE_ERROR_BAD_PARAMETERS", 0xFFFF0006, "bad parameters", "Malformed", gp=True),
    Result("TEE_ERROR_ITEM_NOT_FOUND", 0xFFFF0008, "item not found", gp=True),
    Result("TEE_ERROR_NOT_IMPLEMENTED", 0xFFFF0009, "not implemented", gp=True),
    Result("TEE_ERROR_OUT_OF_MEMORY", 0xFFFF000C, "out of memory", gp=True),
    Result("TEE_ERROR_BUSY", 0xFFFF000D, "busy", gp=True),
    Result("TEE_ERROR_COMMUNICATION", 0xFFFF000E, "communication error", gp=True),
    Result("TEE_ERROR_SHORT_BUFFER", 0xFFFF0010, "short buffer", gp=True),
    Result("TEE_ERROR_OVERFLOW", 0xFFFF300F, "overflow", gp=True),
    Result("TEE_ERROR_TARGET_DEAD", 0xFFFF3024, "trusted application died", gp=True),
    # The client's own result (origin API): the TA committed a package but
    # the backbone file could not be put in place.
    Result("EDGE_CLIENT_ERR_BACKBONE_NOT_PUBLISHED", 0xED6E1001,
           "package committed, backbone not moved into place", "BackboneNotPublished"),
)

# TEEC_ORIGIN_* of a result.
ORIGINS = (
    Member("API", 1, "client library"),
    Member("COMMS", 2, "transport"),
    Member("TEE", 3, "TEE"),
    Member("TRUSTED_APP", 4, "trusted application"),
)

ENUMS: tuple[Enum, ...] = (
    Enum("Kind", "EDGE_KIND_", "Envelope kinds: what an artefact is.", (
        Member("PACKAGE", 1, "model package manifest"),
        Member("ANCHOR_STATEMENT", 2, "anchor statement"),
        Member("DEVICE_RECORD", 3, "device record"),
        Member("ROUND_TICKET", 4, "round ticket"),
        Member("SEALED_UPDATE", 5, "sealed update"),
        Member("PRIVACY_POLICY", 6, "privacy policy"),
        Member("ENROLLMENT_CERT", 7, "enrollment certificate"),
        Member("SECAGG_ADVERT", 8, "secure-aggregation advert"),
        Member("SECAGG_DIRECTIVE", 9, "secure-aggregation directive (roster, inbox, survivors)"),
        Member("SECAGG_SHARES", 10, "secure-aggregation shares bundle"),
        Member("SECAGG_REVEALS", 11, "secure-aggregation reveals"),
        Member("SKIP_REPORT", 12, "skip report"),
        Member("KEY_WRAP", 14, "a package's content key wrapped for one device"),
    )),
    Enum("AnchorRole", "EDGE_ROLE_", "Which trust anchor an anchor statement replaces.", (
        Member("MODEL_SIGNER", 1, "signs packages and policies"),
        Member("AGGREGATOR", 2, "signs round tickets"),
        Member("REGISTRAR", 3, "signs enrollment certificates"),
    )),
    Enum("PackageFlag", "EDGE_PKG_FLAG_", "Manifest flags.", (
        Member("BACKBONE", 0x1, "backbone present"),
        Member("BACKBONE_ENCRYPTED", 0x2, "backbone encrypted (needs BACKBONE)"),
    ), flag=True),
    Enum("InferRelease", "EDGE_INFER_", "What INFER may release of the head.", (
        Member("NONE", 0, "INFER refused"),
        Member("LABEL", 1, "the best label"),
        Member("TOPK", 2, "the k best labels"),
        Member("SCORES", 3, "every score"),
    )),
    Enum("Sampling", "EDGE_SAMPLING_", "How DP-SGD samples examples each step.", (
        Member("POISSON", 1, "each example joins with probability q"),
        Member("FIXED", 2, "B examples uniformly without replacement"),
    )),
    Enum("PolicyFlag", "EDGE_POLICY_F_", "Privacy policy flags.", (
        Member("NO_DP", 0x1, "test-only: noise may be 0"),
        Member("REQUIRE_SECAGG", 0x2, "refuse tickets without secure aggregation"),
    ), flag=True),
    Enum("Accountant", "EDGE_ACCOUNTANT_", "The privacy accountant a policy was computed with.", (
        Member("RDP", 1, "Renyi DP"),
        Member("PLD", 2, "privacy loss distributions"),
    )),
    Enum("UpdateMode", "EDGE_UPDATE_MODE_", "How a sealed update carries its delta.", (
        Member("FLOAT32", 1, "plain float32 delta"),
        Member("SECAGG", 2, "masked 32-bit words (secure aggregation)"),
    )),
    Enum("SecAggStage", "EDGE_SECAGG_STAGE_", "What an aggregator's secure-aggregation "
         "directive carries.", (
        Member("ROSTER", 1, "advertised devices: certificate and advert each"),
        Member("INBOX", 2, "the shares sent to one device by the neighbours that shared"),
        Member("SURVIVORS", 3, "the devices whose masked update arrived"),
    )),
    Enum("SecAggShare", "EDGE_SECAGG_SHARE_", "Which secret a revealed share belongs to.", (
        Member("SEED", 1, "self-mask seed b (16 bytes)"),
        Member("SKEY", 2, "s-secret key (32 bytes)"),
    )),
    Enum("SkipReason", "EDGE_SKIP_REE_", "Why the normal world skipped a round the TA "
         "would train (stated, not checked).", (
        Member("NONE", 0, "no normal-world reason: the TA's refusal is the reason"),
        Member("NO_SAMPLES", 1, "no local samples to train on"),
        Member("BACKBONE_UNUSABLE", 2, "the package's backbone cannot be run"),
        Member("FEATURE_SHAPE", 3, "the features do not match the head's input"),
        Member("DATA_SOURCE", 4, "the local data could not be read"),
    )),
    Enum("SkipField", "EDGE_SKIP_FIELD_", "What a skip report's two values are.", (
        Member("NONE", 0, "no values"),
        Member("MODEL", 1, "ticket's model version; installed version"),
        Member("ROUND", 2, "ticket's round; last sealed round"),
        Member("DEADLINE", 3, "ticket's deadline; now (REE time or time floor)"),
        Member("EXAMPLE_CLIP", 4, "ticket's C; policy's C_max"),
        Member("NOISE_MULTIPLIER", 5, "ticket's sigma; policy's sigma_min"),
        Member("UPDATE_CLIP", 6, "ticket's U; policy's U_max"),
        Member("STEPS_PER_ROUND", 7, "steps the round takes; policy's maximum per round"),
        Member("BATCH_SIZE", 8, "ticket's B; example count n"),
        Member("SAMPLING_RATE", 9, "B / n; policy's q"),
        Member("BUDGET", 10, "steps the round takes; steps left in the budget"),
        Member("UPDATE_MODE", 11, "ticket's update mode; the mode the policy requires"),
    )),
    Enum("StatusFlag", "EDGE_STATUS_F_", "GET_STATUS flags.", (
        Member("IDENTITY", 0x1, "identity keys exist"),
        Member("ANCHORS", 0x2, "trust anchors installed"),
        Member("MODEL", 0x4, "a head is active"),
    ), flag=True),
    Enum("BudgetFlag", "EDGE_BUDGET_F_", "BUDGET_STATUS flags.", (
        Member("POLICY", 0x1, "a privacy policy is installed"),
    ), flag=True),
)

# Who signs each kind of artefact (docs/formats.md).
SIGNED_BY = {
    "PACKAGE": "model-signer anchor",
    "ANCHOR_STATEMENT": "the current key of the role being replaced",
    "DEVICE_RECORD": "the device's own identity key (proof of possession)",
    "ROUND_TICKET": "aggregator anchor",
    "SEALED_UPDATE": "the device's identity key",
    "PRIVACY_POLICY": "model-signer anchor",
    "ENROLLMENT_CERT": "registrar anchor",
    "SECAGG_ADVERT": "the device's identity key",
    "SECAGG_DIRECTIVE": "aggregator anchor",
    "SECAGG_SHARES": "the device's identity key",
    "SECAGG_REVEALS": "the device's identity key",
    "SKIP_REPORT": "the device's identity key",
    "KEY_WRAP": "model-signer anchor",
}

PUBKEY_SIZE = 32
KEY_ID_SIZE = 16
SIG_SIZE = 64
ENVELOPE_HEADER_SIZE = 28

CONSTANTS: tuple[Constant, ...] = (
    Constant("PUBKEY_SIZE", PUBKEY_SIZE),
    Constant("KEY_ID_SIZE", KEY_ID_SIZE),
    Constant("SIG_SIZE", SIG_SIZE),
    Constant("NONCE_SIZE", 16, "cohort nonce of a round"),
    Constant("AEAD_TAG_SIZE", 16, "AES-GCM tag after each encrypted chunk"),
    Constant("POLICY_ID_SIZE", 8, "key id of an installed policy's digest"),
    Constant("MAX_MANIFEST_SIZE", 1024 * 1024, expr="(1024 * 1024)"),
    Constant("WRAPPED_KEY_SIZE", 48, "wrapped content key (32 + 16 tag)"),
    Constant("MAX_CHUNKS", 4096),
    Constant("MIN_CHUNK_LOG2", 12),
    Constant("MAX_CHUNK_LOG2", 20),
    Constant("MAX_HEAD_IN", 4096),
    Constant("MAX_HEAD_OUT", 1024),
    Constant("MAX_HEAD_PARAMS", 128 * 1024, expr="(128 * 1024)"),
    Constant("MAX_METADATA", 4096),
    Constant("MAX_INFER_BATCH", 1024),
    Constant("INFER_UNLIMITED", 0xFFFFFFFF, "INFER rows left without a budget",
             expr="0xFFFFFFFFu"),
    Constant("INFER_RESERVE_ROWS", 1024, "query budget rows reserved per storage write"),
    Constant("MAX_TRAIN_EXAMPLES", 4096),
    Constant("MAX_TRAIN_FEATURE_BYTES", 8 * 1024 * 1024, expr="(8 * 1024 * 1024)"),
    Constant("MAX_STEPS_PER_ROUND", 100000),
    Constant("POLICY_TABLE_ENTRIES", 32, "steps -> epsilon entries a policy can carry"),
    Constant("POLICY_TABLE_ENTRY_SIZE", 16, "steps (u64) || epsilon (f64)"),
    Constant("FLEET_ID_SIZE", 16, "first 16 bytes of SHA-256 of the fleet name"),
    Constant("SECAGG_MAX_COHORT", 1024, "devices in one secure-aggregation roster"),
    Constant("SECAGG_MAX_NEIGHBOURS", 254, "k: the neighbours and the device hold k + 1 "
             "Shamir shares, x = 1..255"),
    Constant("SECAGG_SEED_SIZE", 16, "self-mask seed b and pairwise mask seeds"),
    Constant("SECAGG_SHARE_PT_SIZE", 48, "one share pair: seed share (16) || s-key share (32)"),
    Constant("SECAGG_SHARE_CT_SIZE", 64, "an encrypted share pair: 48 + 16-byte GCM tag"),
    Constant("SECAGG_ROSTER_ENTRY_SIZE", 376, "enrollment certificate (156) || advert (220)"),
    Constant("SECAGG_INBOX_ENTRY_SIZE", 80, "sender device id (16) || encrypted share pair"),
    Constant("SECAGG_SHARES_ENTRY_SIZE", 80, "recipient device id (16) || encrypted pair"),
    Constant("SECAGG_REVEAL_ENTRY_SIZE", 56,
             "owner (16) || which || x || reserved (6) || share (32)"),
)

_U64 = 2**64 - 1

LAYOUTS: tuple[Layout, ...] = (
    Layout("envelope", "Signed envelope", "ENVELOPE_HEADER", "ENVELOPE_HEADER", (
        Field("magic", "bytes", "magic `EDGE` (0x45 0x44 0x47 0x45)", size=4),
        Field("version", "u16", "format version of the kind named at offset 6 (checked "
              "before the kind): `2` for model packages, privacy policies, round tickets and "
              "sealed updates, `1` for the others"),
        Field("kind", "u16", "kind (below)"),
        Field("body_len", "u32", "`body_len`"),
        Field("signer_key_id", "bytes", "signer key id: `key_id` of the signing Ed25519 key",
              size=KEY_ID_SIZE),
    ), tail=(
        Tail("28", "`body_len`", "body, layout by kind"),
        Tail("28 + `body_len`", "64", "Ed25519 signature"),
    )),
    Layout("device", "Device record", "DEVICE", "DEVICE_RECORD_BODY", (
        Field("sign_pub", "bytes", "Ed25519 identity public key", size=PUBKEY_SIZE),
        Field("kex_pub", "bytes", "X25519 key-agreement public key", size=PUBKEY_SIZE),
        Field("abi_version", "u32",
              "TA ABI version (`EDGE_TA_ABI_VERSION`; informational, consumers accept any)"),
        Field("reserved", "reserved", "reserved", size=4),
    ), size_name="EDGE_DEVICE_BODY_SIZE"),
    Layout("anchor", "Anchor statement", "ANCHOR", "ANCHOR_STATEMENT_BODY", (
        Field("role", "u8", "role: 1 = model signer, 2 = aggregator", enum="AnchorRole"),
        Field("reserved", "reserved", "reserved", size=7),
        Field("epoch", "u64", "epoch: must equal the stored epoch of that role + 1"),
        Field("new_pub", "bytes", "new Ed25519 public key", size=PUBKEY_SIZE),
    ), size_name="EDGE_ANCHOR_BODY_SIZE"),
    Layout("manifest", "Manifest (envelope body)", "MANIFEST", "MANIFEST_FIXED", (
        Field("version", "u64", "model version (≥ 1, strictly increasing per device)", lo=1),
        Field("package_id", "bytes", "package id (random)", size=16),
        Field("flags", "u32", "flags: bit 0 backbone present, bit 1 backbone encrypted "
              "(needs bit 0); other bits 0", enum="PackageFlag"),
        Field("ephemeral_pub", "bytes", "ephemeral X25519 public key `E` of this package",
              size=PUBKEY_SIZE),
        Field("reserved1", "reserved", "reserved (the recipient count of format 1)", size=4),
        Field("head_in", "u32", "head input size `I`, 1 ≤ I ≤ 4096", lo=1, hi=4096,
              refusal="oversized"),
        Field("head_out", "u32", "head output size `O`, 1 ≤ O ≤ 1024, with `I·O + O ≤ 131072`",
              lo=1, hi=1024, refusal="oversized"),
        Field("backbone_len", "u64", "backbone length `L` in bytes (0 iff no backbone)"),
        Field("chunk_log2", "u8", "`chunk_log2`: chunk size `C = 2^chunk_log2`, 12..20 with a "
              "backbone, 0 without", hi=20, refusal="oversized"),
        Field("reserved2", "reserved", "reserved", size=3),
        Field("chunk_count", "u32", "chunk count `N = ceil(L / C)`, ≤ 4096 (0 without backbone)",
              hi=4096, refusal="oversized"),
        Field("metadata_len", "u32", "metadata length `M`, ≤ 4096", hi=4096,
              refusal="oversized"),
        Field("infer_release", "u8", "inference release: 0 none, 1 label, 2 top-k labels, "
              "3 scores (see \"Inference release\")", enum="InferRelease"),
        Field("reserved3", "reserved", "reserved", size=1),
        Field("topk", "u16", "`k` for top-k, 1 ≤ k < O; 0 for the other releases"),
        Field("query_budget", "u32",
              "query budget: rows INFER answers per model version; 0 = no budget"),
        Field("feature_bound", "f32", "feature bound `B` (float32, finite, ≥ 0): INFER refuses "
              "a feature with \\|x\\| > B; 0 = no bound", lo=0.0),
    ), tail=(
        Tail("104", "32·N", "chunk digests: SHA-256 of each **stored** chunk"),
        Tail("…", "4·(I·O + O) + 16", "head ciphertext ‖ tag"),
        Tail("…", "M", "metadata: UTF-8 JSON object, opaque to the TA (backbone tensor types "
             "and shapes, names)"),
    ), size_name="EDGE_MANIFEST_FIXED_SIZE"),
    Layout("wrap", "Key wrap", "KEY_WRAP", "KEY_WRAP_BODY", (
        Field("device_id", "bytes", "device id of the one device this wrap is for", size=16),
        Field("package_id", "bytes", "package id of the manifest it unlocks", size=16),
        Field("manifest_digest", "bytes", "SHA-256 of that manifest's signed part (its "
              "envelope header and body)", size=32),
        Field("wrapped_key", "bytes", "content key `K` wrapped for the device "
              "(32 + 16 tag)", size=48),
    ), size_name="EDGE_KEY_WRAP_BODY_SIZE"),
    Layout("policy", "Privacy policy", "POLICY", "POLICY_BODY", (
        Field("version", "u64", "policy version (≥ 1)", lo=1),
        Field("noise_multiplier_min", "f32",
              "minimum noise multiplier σ_min (float32, ≥ 0; 0 only with the no-DP flag)",
              lo=0.0),
        Field("max_example_clip", "f32", "maximum per-example clip C_max (float32, > 0)",
              lo=0.0, lo_open=True),
        Field("max_update_clip", "f32", "maximum update clip U_max (float32, > 0)",
              lo=0.0, lo_open=True),
        Field("sampling_rate", "f32", "sampling rate q (float32, 0 < q ≤ 1)",
              lo=0.0, hi=1.0, lo_open=True),
        Field("sampling", "u8",
              "sampling: 1 = Poisson, 2 = fixed-size (uniform without replacement)",
              enum="Sampling"),
        Field("flags", "u8", "flags: bit 0 = no-DP test policy (allows σ = 0; `firmware-sign` "
              "marks it loudly)", enum="PolicyFlag"),
        Field("reserved1", "reserved", "reserved", size=2),
        Field("max_steps_per_round", "u32", "maximum DP-SGD steps per round (1..100000)",
              lo=1, hi=100000),
        Field("step_budget", "u64", "step budget: total DP-SGD steps this device may spend",
              lo=1),
        Field("target_epsilon", "f64",
              "target ε the budget was computed for (float64, informational)"),
        Field("delta", "f64", "δ (float64)"),
        Field("accountant", "u32", "accountant used: 1 = RDP, 2 = PLD (informational)",
              enum="Accountant"),
        Field("reserved2", "reserved", "reserved", size=4),
        Field("table_count", "u32", "entries `N` of the steps → ε table, 1 ≤ N ≤ 32 (0 only "
              "with the no-DP flag)", hi=32),
        Field("min_noise_share", "f32", "minimum distributed-DP noise share z_s (float32, "
              "≥ 0; 0 = none): with z_s > 0 every update goes through secure aggregation "
              "carrying its share N_Z(0, z_s²·norm2_max) (docs/privacy.md)", lo=0.0),
        Field("epsilon_table", "bytes", "steps → ε table: 32 entries of steps (u64) ‖ ε "
              "(float64); the first `N` with steps strictly increasing from ≥ 1 to the step "
              "budget and ε finite, > 0, non-decreasing; the rest zero", size=512),
    ), size_name="EDGE_POLICY_BODY_SIZE"),
    Layout("ticket", "Round ticket", "TICKET", "TICKET_BODY", (
        Field("round_id", "u64", "round id (≥ 1; strictly increasing per device)", lo=1),
        Field("model_version", "u64", "model version the round trains"),
        Field("package_id", "bytes", "package id of the model the round trains", size=16),
        Field("nonce", "bytes", "cohort nonce", size=16),
        Field("issued_at", "u64", "issued at (Unix seconds, aggregator clock)"),
        Field("deadline", "u64", "deadline (Unix seconds)"),
        Field("example_clip", "f32", "per-example clip C (float32, > 0)", lo=0.0, lo_open=True),
        Field("noise_multiplier", "f32", "noise multiplier σ (float32, ≥ 0)", lo=0.0),
        Field("update_clip", "f32", "update clip U: L2 bound of the released delta "
              "(float32, > 0)", lo=0.0, lo_open=True),
        Field("learning_rate", "f32", "learning rate η (float32, > 0)", lo=0.0, lo_open=True),
        Field("epochs", "u16", "local epochs E (≥ 1)", lo=1),
        Field("batch_size", "u16", "batch size B (≥ 1; used by fixed-size sampling)", lo=1),
        Field("update_mode", "u8", "update mode: 1 = float32 delta, 2 = secure aggregation",
              enum="UpdateMode"),
        Field("reserved", "reserved", "reserved", size=3),
        Field("fleet_id", "bytes", "fleet id (secure aggregation; zero otherwise)", size=16),
        Field("secagg_threshold", "u16", "Shamir threshold t (secure aggregation; 0 otherwise)"),
        Field("secagg_neighbours", "u16",
              "neighbours k per device, ≤ 254 (secure aggregation; 0 otherwise)", hi=254),
        Field("secagg_cohort", "u16", "cohort bound: most devices summed, ≤ 1024 "
              "(secure aggregation; 0 otherwise)", hi=1024),
        Field("secagg_scale_log2", "u8", "quantization scale 2^s, s ≤ 30 "
              "(secure aggregation; 0 otherwise)", hi=30),
        Field("reserved2", "reserved", "reserved", size=1),
    ), size_name="EDGE_TICKET_BODY_SIZE"),
    Layout("update", "Sealed update", "UPDATE_HEADER", "UPDATE_HEADER", (
        Field("device_id", "bytes", "device id", size=16),
        Field("round_id", "u64", "round id"),
        Field("nonce", "bytes", "cohort nonce (from the ticket)", size=16),
        Field("model_version", "u64", "model version"),
        Field("package_id", "bytes", "package id of the model trained (from the ticket)",
              size=16),
        Field("example_count", "u32", "example count n"),
        Field("steps", "u32", "steps spent in this round T"),
        Field("steps_total", "u64", "total steps spent after this round"),
        Field("update_mode", "u8", "update mode (1 = float32, 2 = masked words)",
              enum="UpdateMode"),
        Field("reserved1", "reserved", "reserved", size=3),
        Field("param_count", "u32", "parameter count P"),
        Field("update_clip", "f32", "update clip U (float32)"),
        Field("noise_multiplier", "f32", "noise multiplier σ (float32)"),
        Field("example_clip", "f32", "per-example clip C (float32)"),
        Field("reserved2", "reserved", "reserved", size=4),
    ), tail=(
        Tail("104", "4P", "mode 1: delta, float32, W row-major then b; ‖Δ‖₂ ≤ U. "
             "Mode 2: masked words, uint32 (docs/secagg.md)"),
    )),
    Layout("cert", "Enrollment certificate", "CERT", "CERT_BODY", (
        Field("device_id", "bytes", "device id: `key_id` of the identity key", size=16),
        Field("identity_pub", "bytes", "the device's Ed25519 identity public key",
              size=PUBKEY_SIZE),
        Field("fleet_id", "bytes", "fleet id", size=16),
    ), size_name="EDGE_CERT_BODY_SIZE"),
    Layout("advert", "Secure-aggregation advert", "ADVERT", "ADVERT_BODY", (
        Field("device_id", "bytes", "device id of the advertising TA", size=16),
        Field("fleet_id", "bytes", "fleet id (from the ticket)", size=16),
        Field("round_id", "u64", "round id"),
        Field("nonce", "bytes", "cohort nonce", size=16),
        Field("model_version", "u64", "model version"),
        Field("c_pub", "bytes", "X25519 public key for share encryption", size=PUBKEY_SIZE),
        Field("s_pub", "bytes", "X25519 public key for pairwise mask seeds", size=PUBKEY_SIZE),
    ), size_name="EDGE_ADVERT_BODY_SIZE"),
    Layout("directive", "Secure-aggregation directive", "DIRECTIVE", "DIRECTIVE_HEADER", (
        Field("stage", "u8", "stage: 1 roster, 2 inbox, 3 survivors", enum="SecAggStage"),
        Field("reserved", "reserved", "reserved", size=3),
        Field("count", "u32", "entry count `N` (≤ 1024)", hi=1024, refusal="oversized"),
        Field("fleet_id", "bytes", "fleet id", size=16),
        Field("round_id", "u64", "round id"),
        Field("nonce", "bytes", "cohort nonce", size=16),
        Field("model_version", "u64", "model version"),
        Field("recipient", "bytes", "inbox: the device it is for; zero otherwise", size=16),
    ), tail=(
        Tail("72", "376·N", "roster: certificate ‖ advert per device, device ids strictly "
             "increasing"),
        Tail("72", "80·N", "inbox: sender id ‖ encrypted share pair, senders strictly "
             "increasing"),
        Tail("72", "16·N", "survivors: device ids strictly increasing"),
    ), size_name="EDGE_DIRECTIVE_HEADER_SIZE"),
    Layout("shares", "Secure-aggregation shares bundle", "SHARES", "SHARES_HEADER", (
        Field("device_id", "bytes", "device id of the sender", size=16),
        Field("fleet_id", "bytes", "fleet id", size=16),
        Field("round_id", "u64", "round id"),
        Field("nonce", "bytes", "cohort nonce", size=16),
        Field("model_version", "u64", "model version"),
        Field("count", "u32", "entry count `N` (≤ 254)", hi=254, refusal="oversized"),
        Field("reserved", "reserved", "reserved", size=4),
    ), tail=(
        Tail("72", "80·N", "per neighbour: recipient id ‖ AES-GCM(seed share ‖ s-key share) "
             "‖ tag, recipients strictly increasing"),
    ), size_name="EDGE_SHARES_HEADER_SIZE"),
    Layout("reveals", "Secure-aggregation reveals", "REVEALS", "REVEALS_HEADER", (
        Field("device_id", "bytes", "device id of the revealing TA", size=16),
        Field("fleet_id", "bytes", "fleet id", size=16),
        Field("round_id", "u64", "round id"),
        Field("nonce", "bytes", "cohort nonce", size=16),
        Field("model_version", "u64", "model version"),
        Field("count", "u32", "entry count `N` (≤ 255)", hi=255, refusal="oversized"),
        Field("survivors_digest", "bytes", "survivors digest: SHA-256 of the survivor "
              "list answered, first 16 bytes", size=16),
        Field("reserved", "reserved", "reserved", size=4),
    ), tail=(
        Tail("88", "56·N", "owner id ‖ which (1 seed, 2 s-key) ‖ x ‖ reserved (6) ‖ share (32)"),
    ), size_name="EDGE_REVEALS_HEADER_SIZE"),
    Layout("skip", "Skip report", "SKIP", "SKIP_REPORT_BODY", (
        Field("device_id", "bytes", "device id", size=16),
        Field("round_id", "u64", "round id (from the ticket)"),
        Field("nonce", "bytes", "cohort nonce (from the ticket)", size=16),
        Field("ticket_model_version", "u64", "model version the ticket names"),
        Field("ticket_package_id", "bytes", "package id the ticket names", size=16),
        Field("model_version", "u64", "model version installed, 0 = none"),
        Field("package_id", "bytes", "package id installed, zero if none", size=16),
        Field("result", "u32", "the TA's refusal of the ticket (a TEE result; 0 = none: the "
              "normal world's reason below)"),
        Field("ree_reason", "u16", "normal-world reason, stated (`EDGE_SKIP_REE_*`)",
              enum="SkipReason"),
        Field("field", "u16", "what `value` and `bound` are (`EDGE_SKIP_FIELD_*`)",
              enum="SkipField"),
        Field("value", "f64", "the ticket's (or the round's) value (float64)"),
        Field("bound", "f64", "the policy's or the device's bound it failed (float64)"),
        Field("reported_at", "u64", "REE time given (Unix seconds)"),
    ), size_name="EDGE_SKIP_BODY_SIZE"),
    Layout("status", "Status block", "STATUS", "STATUS_BLOCK", (
        Field("abi_version", "u32", "TA ABI version"),
        Field("flags", "u32", "flags (`EDGE_STATUS_F_*`)", enum="StatusFlag"),
        Field("model_version", "u64", "model version, 0 = none"),
        Field("device_id", "bytes", "device id, zero if none", size=16),
        Field("head_in", "u32", "head input size"),
        Field("head_out", "u32", "head output size"),
        Field("signer_epoch", "u64", "model-signer anchor epoch"),
        Field("agg_epoch", "u64", "aggregator anchor epoch"),
        Field("signer_key_id", "bytes", "model-signer key id", size=16),
        Field("agg_key_id", "bytes", "aggregator key id", size=16),
        Field("package_id", "bytes", "package id of the active model", size=16),
    )),
    Layout("budget", "Budget block", "BUDGET", "BUDGET_BLOCK", (
        Field("flags", "u32", "flags: bit 0 policy installed", enum="BudgetFlag"),
        Field("reserved", "reserved", "reserved", size=4),
        Field("steps_spent", "u64", "steps spent"),
        Field("step_budget", "u64", "step budget, from the policy"),
        Field("policy_version", "u64", "policy version"),
        Field("rounds_sealed", "u64", "rounds sealed"),
        Field("last_round", "u64", "last sealed round, 0 = none"),
        Field("time_floor", "u64", "time floor (Unix seconds)"),
        Field("policy_id", "bytes", "policy id: first 8 bytes of SHA-256 of the policy envelope",
              size=8),
        Field("epsilon_spent", "f64", "ε of the steps spent, from the policy's table (the "
              "first entry at or above them; 0 before any step; inf for a no-DP policy)",
              posinf_ok=True),
        Field("epsilon_budget", "f64", "ε of the whole step budget (the table's last entry; "
              "inf for a no-DP policy)", posinf_ok=True),
        Field("delta", "f64", "δ of the policy"),
    )),
)

# Whole-artefact sizes the ABI names (header + body + signature).
ARTEFACT_SIZES = (
    ("DEVICE_RECORD_SIZE", "device"),
    ("ANCHOR_STATEMENT_SIZE", "anchor"),
    ("TICKET_SIZE", "ticket"),
    ("POLICY_SIZE", "policy"),
    ("CERT_SIZE", "cert"),
    ("SECAGG_ADVERT_SIZE", "advert"),
    ("SKIP_REPORT_SIZE", "skip"),
    ("KEY_WRAP_SIZE", "wrap"),
)

"""Exceptions of edge, each carrying the refusal class a user can act on.

The same classes are raised by the Python parsers (``edge.formats``) and by the
TA binding when the trusted application refuses something, so a tampered
package is a :class:`Tampered` wherever it is caught. ``refusal`` is the short
name printed first on the command line (``edge: rollback: ...``).
"""

from __future__ import annotations

from pathlib import Path


class EdgeError(Exception):
    """Base of every error edge raises on purpose."""

    refusal = "error"

    def __init__(self, message: str, *, code: int | None = None, origin: int | None = None):
        super().__init__(message)
        self.code = code
        self.origin = origin


# The classes below come from contract/spec.py (python -m contract.generate).
# BEGIN GENERATED exceptions
class Malformed(EdgeError):
    """An artefact is truncated, has trailing bytes, bad magic or bad fields."""

    refusal = "malformed"


class UnsupportedVersion(Malformed):
    """An artefact's format version is not one this build understands."""

    refusal = "unsupported-version"


class WrongKind(Malformed):
    """An artefact of another kind was given (a ticket where a package goes)."""

    refusal = "wrong-kind"


class Oversized(EdgeError):
    """An artefact or input is over a documented limit."""

    refusal = "oversized"


class SignatureInvalid(EdgeError):
    """A signature does not verify under the expected key."""

    refusal = "signature"


class WeakKey(EdgeError):
    """A public key that is off the curve, non-canonical or of small order."""

    refusal = "weak-key"


class UnknownSigner(EdgeError):
    """An artefact names a signer key that is not the expected anchor."""

    refusal = "unknown-signer"


class Tampered(EdgeError):
    """An authenticated ciphertext (wrapped key, head, backbone chunk) failed its tag."""

    refusal = "tampered"


class ChunkDigestMismatch(Tampered):
    """A backbone chunk differs from the digest listed in the signed manifest."""

    refusal = "chunk-digest"


class Rollback(EdgeError):
    """A model version not above the one recorded in secure storage."""

    refusal = "rollback"


class NotForThisDevice(EdgeError):
    """A package has no content key addressed to this device."""

    refusal = "not-for-this-device"


class WrongPackage(EdgeError):
    """A key wrap bound to another package (package id or manifest digest differ)."""

    refusal = "wrong-package"


class RetiredFormat(UnsupportedVersion):
    """A retired format version (a version-1 model package, its recipient list)."""

    refusal = "retired-format"


class StaleStatement(EdgeError):
    """An anchor statement whose epoch is not the next one (replayed or skipped)."""

    refusal = "stale-statement"


class NotProvisioned(EdgeError):
    """The TA has no trust anchors yet; run ``edge tee provision``."""

    refusal = "not-provisioned"


class AlreadyProvisioned(EdgeError):
    """Trust anchors are installed already; replace them with a signed statement."""

    refusal = "already-provisioned"


class NoModel(EdgeError):
    """No model package has been loaded into the TA yet."""

    refusal = "no-model"


class BadState(EdgeError):
    """A command came out of order (a chunk without a begun load, say)."""

    refusal = "bad-state"


class Expired(EdgeError):
    """A round ticket whose deadline has passed (REE time or the TA's time floor)."""

    refusal = "expired"


class Replay(EdgeError):
    """A round ticket for a round not above the last round this device sealed."""

    refusal = "replay"


class WrongModel(EdgeError):
    """A round ticket for another model (version or package id) than the one loaded."""

    refusal = "wrong-model"


class PolicyViolation(EdgeError):
    """A ticket or round weaker than the device's privacy policy allows."""

    refusal = "weaker-than-policy"


class InferenceDisabled(EdgeError):
    """The active package releases nothing of the head to INFER."""

    refusal = "infer-disabled"


class BudgetExhausted(EdgeError):
    """The privacy budget cannot cover the steps a round would take."""

    refusal = "budget-exhausted"


class NoPolicy(EdgeError):
    """No privacy policy is installed; install one with a signed policy."""

    refusal = "no-policy"


class WrongRound(EdgeError):
    """A secure-aggregation message bound to another fleet, round or model."""

    refusal = "wrong-round"


class TooFewSurvivors(EdgeError):
    """Fewer than the threshold t of devices remain to finish a secure-aggregation round."""

    refusal = "too-few-survivors"


class ShareConflict(EdgeError):
    """A second, different survivor list (or message) for a secagg round."""

    refusal = "share-conflict"


class UnknownEnrollment(EdgeError):
    """An enrollment certificate not from the registrar, or for another fleet."""

    refusal = "unknown-enrollment"


class ForgedAdvert(EdgeError):
    """A secure-aggregation advert not signed by the device's certified identity key."""

    refusal = "forged-advert"


class NoiseShareBelowPolicy(PolicyViolation):
    """A ticket whose update would lack the policy's distributed-DP noise share."""

    refusal = "noise-share-below-policy"


class NoiseShareUnfit(EdgeError):
    """A secagg round with no 32-bit headroom (or sampler range) for the noise share."""

    refusal = "noise-share-unfit"


class NothingToReport(EdgeError):
    """A skip report was asked for a ticket the TA would train on, with no reason."""

    refusal = "nothing-to-report"


class TeeError(EdgeError):
    """The TEE or its client library failed (not a refusal of the input)."""

    refusal = "tee"


class BackboneNotPublished(TeeError):
    """The TA committed a package but its backbone could not be moved into place."""

    refusal = "backbone-not-published"

    def __init__(self, message: str, *, partial: Path,
                 code: int | None = None, origin: int | None = None) -> None:
        super().__init__(message, code=code, origin=origin)
        self.partial = partial


class TeeUnavailable(TeeError):
    """The TEE backend cannot be opened (library, device or TA missing)."""

    refusal = "tee-unavailable"


class TeeDead(TeeError):
    """The trusted application died (panic or crash); open a new session."""

    refusal = "tee-dead"


class ConfigError(EdgeError):
    """A configuration file or command-line value is invalid; names the key."""

    refusal = "config"


class StateError(EdgeError):
    """A state file (database, metrics) cannot be opened, read or written; names the file."""

    refusal = "state"


class ModelMismatch(Malformed):
    """A model's input/output types or shapes differ from its package metadata."""

    refusal = "model-mismatch"


class UnverifiedModel(ConfigError):
    """A model file that did not pass the TA's verification, without the development opt-in."""

    refusal = "unverified-model"


class DelegateUnavailable(ConfigError):
    """A required NPU delegate failed to load or left part of the graph on the CPU."""

    refusal = "delegate"


class ModelNotPublished(EdgeError):
    """The aggregator's newest model never reached the broker (no PUBACK) in the time allowed."""

    refusal = "model-not-published"


class ConsoleError(EdgeError):
    """A board's serial console did not answer as expected (no login, no marker, timeout)."""

    refusal = "console"


class ConsoleLost(ConsoleError):
    """The serial console went away mid-command; run again to resume where it stopped."""

    refusal = "console-lost"


class TransferCorrupt(EdgeError):
    """A file sent over a console arrived with another checksum than the one sent."""

    refusal = "transfer-corrupt"


class BoardMismatch(EdgeError):
    """A board reports another bundle version, or a state the operator did not ask for."""

    refusal = "board-mismatch"
# END GENERATED exceptions

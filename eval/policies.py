"""Adapters that make things the runner can drive out of experts, random actions, Stable-Baselines3 models,
callables and vp_agent checkpoints, and the specs that name them on the command line.

Every policy implements the one interface, :class:`vp_agent.policies.interface.Policy` (re-exported here):
``reset(env_ids=None)`` and ``act(obs, infos)``, both batched over env slots, plus the attributes the runner
reads (``spec``, ``checkpoint_hash``, ``privileged``, ``config``, ``training_record``, ``generated``); its
module docstring says what ``obs`` and ``infos`` hold.

Specs (:func:`load_policy_spec`); each is fully checked before any rollout starts:

============================  ===========================================================================
``expert``                    Meta-World's scripted expert for the episode's task (reads privileged state)
``random``                    uniform actions in [-1, 1], seeded by the episode's seed: deterministic
``sb3:<model.zip>``           a Stable-Baselines3 model (algorithm read from the zip; ``sb3:<algo>:<zip>``
                              forces one, e.g. ``sb3:sac:model.zip``). A model whose observation space is a
                              ``Box`` gets the ``state`` vector (its shape must match the protocol's
                              ``state`` mode); a ``Dict`` model gets the keys it names from ``state`` and
                              the cameras. Actions are ``predict(..., deterministic=True)``.
``py:<module>:<factory>``     ``factory()`` returns a Policy, or a callable ``(obs, info) -> action`` for
                              one env that is looped over the batch (the adapter for "any callable")
``<checkpoint dir>``          a ``vp_agent`` checkpoint (``vp-train``'s ``checkpoints/last``), loaded by
                              ``vp_agent.load_policy(dir)``
============================  ===========================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from vp_agent.policies.interface import Policy, sha256_dir, sha256_file

__all__ = ["Policy", "load_policy_spec", "PolicySpecError", "ExpertPolicy", "RandomPolicy", "CallablePolicy",
           "SB3Policy", "ImageAblation", "with_inference"]

SPEC_KINDS = ("expert", "random", "sb3:<model.zip>", "sb3:<algo>:<model.zip>", "py:<module>:<factory>",
              "<vp_agent checkpoint dir>")
# Stable-Baselines3 algorithms by the module their policy class lives in (read from the zip's "data").
SB3_ALGOS = {"ppo": "PPO", "a2c": "A2C", "sac": "SAC", "td3": "TD3", "ddpg": "DDPG"}
SB3_POLICY_MODULES = {"stable_baselines3.sac.policies": "SAC", "stable_baselines3.td3.policies": "TD3",
                      "stable_baselines3.common.policies": "PPO"}  # PPO and A2C share ActorCriticPolicy


class PolicySpecError(ValueError):
    """A policy spec that cannot be loaded; raised before any rollout."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def index_obs(obs: dict[str, Any], i: int) -> dict[str, Any]:
    """Element ``i`` of a batched observation dict (nested dicts included)."""
    return {k: index_obs(v, i) if isinstance(v, dict) else v[i] for k, v in obs.items()}


class ExpertPolicy(Policy):
    """The scripted expert of each episode's task, one instance per slot: the robosuite experts are staged
    (approach, grasp, lift, ...) and keep their stage between calls, so two slots playing the same task must
    not share one. ``reset`` drops the experts of the slots that start a new episode."""

    privileged = True

    def __init__(self, spec: str = "expert"):
        self.spec = spec
        self.checkpoint_hash = sha256_text(spec)
        self.expert_versions: dict[str, int] = {}
        self._experts: dict[tuple[int, str, str], Callable] = {}

    def bind_protocol(self, protocol) -> None:
        """Hash the experts a protocol's tasks get: where one is past version 1
        (:func:`vp_envs.expert_versions`, e.g. robosuite's Stack) the hash names it, so rows of two versions of
        an expert never share a run dir or a leaderboard row; protocols of first-version experts keep the hash
        of ``spec`` alone. The runner calls this before any rollout."""
        import vp_envs

        self.expert_versions = vp_envs.expert_versions(protocol.suite, [*protocol.tasks, *protocol.held_out])
        self.checkpoint_hash = sha256_text(self.spec + "".join(f"|{t}=v{v}" for t, v in self.expert_versions.items()))

    def reset(self, env_ids=None):
        if env_ids is None:
            self._experts.clear()
            return
        slots = {int(i) for i in env_ids}
        self._experts = {k: v for k, v in self._experts.items() if k[0] not in slots}

    def needs_frame(self, slot: int) -> bool:
        return False  # the experts act from the simulator's state

    def _expert(self, slot: int, suite: str, task: str) -> Callable:
        key = (slot, suite, task)
        if key not in self._experts:
            import vp_envs

            # scripted_expert only reads env.unwrapped.suite/.task, so a stand-in avoids building an env.
            stub = SimpleNamespace(unwrapped=SimpleNamespace(suite=suite, task=task))
            self._experts[key] = vp_envs.scripted_expert(stub)
        return self._experts[key]

    def act(self, obs, infos):
        return np.stack([self._expert(int(info.get("slot", 0)), info.get("suite", "metaworld"), info["task"])(
            index_obs(obs, i), info) for i, info in enumerate(infos)])


IMAGE_ABLATIONS = ("constant",)


class ImageAblation(Policy):
    """A policy shown a constant mid-grey image instead of every camera frame (``vp-eval ...
    image_ablation=constant``): does it read the image? Its rows carry the spec ``<spec>#constant-image`` and
    the same checkpoint hash, so the leaderboard shows them as their own row beside the policy's."""

    def __init__(self, policy: Any, mode: str = "constant"):
        if mode not in IMAGE_ABLATIONS:
            raise PolicySpecError(f"unknown image_ablation {mode!r}; known: {', '.join(IMAGE_ABLATIONS)}")
        self.inner, self.mode = policy, mode
        self.spec = f"{policy.spec}#{mode}-image"
        self.checkpoint_hash = policy.checkpoint_hash
        self.privileged, self.config = policy.privileged, policy.config
        record = policy.training_record
        self.training_record = {**record, "image_ablation": mode} if isinstance(record, dict) else record

    def reset(self, env_ids=None):
        self.inner.reset(env_ids)

    def needs_frame(self, slot: int) -> bool:
        return False  # it replaces every frame

    def act(self, obs, infos):
        pixels = {k: np.full_like(v, 128) for k, v in obs.get("pixels", {}).items()}
        return self.inner.act({**obs, "pixels": pixels}, infos)


# Settings of a trained policy's config that change how it acts, not what it learned: a checkpoint can be
# evaluated under other values (vp-eval inference={feature_steps: 3}) without retraining.
INFERENCE_SETTINGS = ("num_inference_steps", "feature_steps", "guidance", "sigma_min", "sigma_max",
                      "n_action_steps", "decode_video")


def with_inference(policy: Any, settings: dict[str, Any] | None) -> Any:
    """``policy`` (a loaded ``vp_agent`` checkpoint) acting with other inference settings, e.g. Video Policy
    with fewer video passes per chunk (``{"feature_steps": 3}``) or Diffusion Policy with fewer denoising steps
    (``{"num_inference_steps": 5}``): the speed/success trade-off measured on the same weights. Its rows carry
    the spec ``<spec>#feature_steps=3`` and the same checkpoint hash, and its training record names the
    settings (``inference``), so the leaderboard shows them as their own row beside the policy's and leaves
    them out of the per-seed tables. Only :data:`INFERENCE_SETTINGS` can change (the rest shape the weights);
    an unknown one or a bad value is a :class:`PolicySpecError` before any rollout. The policy is changed in
    place and returned."""
    if not settings:
        return policy
    config = getattr(policy, "config", None)
    if not dataclasses.is_dataclass(config):
        raise PolicySpecError(f"inference settings {dict(settings)} need a vp_agent checkpoint; policy "
                              f"{getattr(policy, 'spec', policy)!r} has no config to change")
    valid = [k for k in INFERENCE_SETTINGS if hasattr(config, k)]
    unknown = sorted(k for k in settings if k not in valid)
    if unknown:
        name = getattr(policy, "name", "this policy")
        raise PolicySpecError(f"inference setting(s) {unknown} cannot change for {name}; valid: {', '.join(valid)}")
    try:
        policy.config = dataclasses.replace(config, **settings)  # the config's own checks run again
    except (TypeError, ValueError) as exc:
        raise PolicySpecError(f"inference settings {dict(settings)}: {exc}") from exc
    policy.spec = f"{policy.spec}#" + ",".join(f"{k}={v}" for k, v in sorted(settings.items()))
    record = getattr(policy, "training_record", None)
    if isinstance(record, dict):
        policy.training_record = {**record, "inference": dict(sorted(settings.items()))}
    return policy


class RandomPolicy(Policy):
    """Uniform random actions. Each episode's generator is seeded by the episode's seed (and a fixed salt),
    so the actions depend only on the episode, never on the slot or on how many envs run at once. Shift
    splits share ``test``'s seeds, so ``test`` and ``camera`` episode ``i`` see the same action sequence:
    paired episodes, the drop is the shift alone."""

    SALT = 0x5EED

    def __init__(self, spec: str = "random"):
        self.spec = spec
        self.checkpoint_hash = sha256_text(spec)
        self._rngs: dict[int, np.random.Generator] = {}

    def reset(self, env_ids=None):
        if env_ids is None:
            self._rngs.clear()
        for i in env_ids or ():
            self._rngs.pop(int(i), None)

    def needs_frame(self, slot: int) -> bool:
        return False

    def act(self, obs, infos):
        import vp_envs

        dim = vp_envs.suite_spec(infos[0].get("suite", "metaworld")).action_dim  # never called with no live slot
        out = np.empty((len(infos), dim), np.float32)
        for row, info in enumerate(infos):
            slot = int(info["slot"])
            if slot not in self._rngs:
                self._rngs[slot] = np.random.default_rng([self.SALT, int(info["seed"])])
            out[row] = self._rngs[slot].uniform(-1.0, 1.0, dim)
        return out


class CallablePolicy(Policy):
    """Adapter for any per-env callable ``(obs, info) -> action``.

    With a ``factory`` (``py:<module>:<factory>``), every env slot gets its own callable, made afresh at the
    start of each episode: a stateful callable (one that keeps a history or an action queue) can neither mix
    slots nor carry state from one episode into the next."""

    def __init__(self, fn: Callable, spec: str, checkpoint_hash: str, factory: Callable | None = None):
        self.fn, self.spec, self.checkpoint_hash, self.factory = fn, spec, checkpoint_hash, factory
        self._fns: dict[int, Callable] = {}

    def reset(self, env_ids=None):
        if env_ids is None:
            self._fns = {}
        for i in env_ids or ():
            self._fns.pop(int(i), None)

    def _fn(self, slot: int) -> Callable:
        if self.factory is None:
            return self.fn
        if slot not in self._fns:
            self._fns[slot] = self.factory()
        return self._fns[slot]

    def act(self, obs, infos):
        return np.stack([np.asarray(self._fn(int(info.get("slot", i)))(index_obs(obs, i), info), np.float32)
                         for i, info in enumerate(infos)])


class SB3Policy(Policy):
    """A Stable-Baselines3 model. See the module docstring for how observations are mapped."""

    def __init__(self, model, spec: str, checkpoint_hash: str):
        from gymnasium import spaces

        self.model, self.spec, self.checkpoint_hash = model, spec, checkpoint_hash
        space = model.observation_space
        if isinstance(space, spaces.Box):
            self.keys = None
            self.state_shape = space.shape
        elif isinstance(space, spaces.Dict):
            self.keys = list(space.spaces)
        else:
            raise PolicySpecError(f"{spec}: SB3 observation space {space} is not supported; "
                                  f"use a Box (the state vector) or a Dict of state/camera keys")

    def _model_obs(self, obs):
        if self.keys is None:
            state = np.asarray(obs["state"], np.float32)
            if state.shape[1:] != tuple(self.state_shape):
                raise ValueError(f"{self.spec}: the model expects a state of shape {self.state_shape}; the "
                                 f"protocol gives {state.shape[1:]} (check the protocol's `state` mode)")
            return state
        out = {}
        for key in self.keys:
            if key == "state":
                out[key] = obs["state"]
            elif key in obs.get("pixels", {}):
                out[key] = obs["pixels"][key]
            else:
                raise ValueError(f"{self.spec}: the model wants observation key {key!r}; available: "
                                 f"state, {', '.join(obs.get('pixels', {}))}")
        return out

    def act(self, obs, infos):
        action, _ = self.model.predict(self._model_obs(obs), deterministic=True)
        return np.clip(np.asarray(action, np.float32).reshape(len(infos), -1), -1.0, 1.0)


def _sb3_algo_from_zip(path: Path, spec: str) -> str:
    """The SB3 algorithm class that saved ``path``, read from the zip's ``data`` JSON."""
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise PolicySpecError(f"policy {spec!r}: {path} is not a Stable-Baselines3 model zip ({exc})") from exc
    module = data.get("policy_class", {}).get("__module__", "")
    if module not in SB3_POLICY_MODULES:
        raise PolicySpecError(f"policy {spec!r}: cannot tell the SB3 algorithm from policy module {module!r}; "
                              f"name it: sb3:<algo>:<zip> with algo one of {', '.join(SB3_ALGOS)}")
    return SB3_POLICY_MODULES[module]


def _load_sb3(spec: str) -> SB3Policy:
    rest = spec[len("sb3:"):]
    algo_name = None
    head, sep, tail = rest.partition(":")
    if sep and head.lower() in SB3_ALGOS:
        algo_name, rest = SB3_ALGOS[head.lower()], tail
    path = Path(rest).expanduser()
    if not rest:
        raise PolicySpecError(f"policy {spec!r}: give the model file, e.g. sb3:runs/ppo/model.zip")
    if not path.is_file():
        raise PolicySpecError(f"policy {spec!r}: SB3 model file {str(path)!r} does not exist")
    algo_name = algo_name or _sb3_algo_from_zip(path, spec)
    import stable_baselines3

    model = getattr(stable_baselines3, algo_name).load(str(path), device="cpu")
    return SB3Policy(model, spec, sha256_file(path))


def _load_py(spec: str) -> Policy:
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts[1:]):
        raise PolicySpecError(f"policy {spec!r}: expected py:<module>:<factory>")
    _, module_name, attr = parts
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PolicySpecError(f"policy {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise PolicySpecError(f"policy {spec!r}: module {module_name!r} has no attribute {attr!r}")
    try:
        made = getattr(module, attr)()
    except Exception as exc:
        raise PolicySpecError(f"policy {spec!r}: {module_name}.{attr}() raised {type(exc).__name__}: {exc}") from exc
    source = inspect.getsourcefile(module)
    digest = sha256_text(spec + (sha256_file(Path(source)) if source else ""))
    if isinstance(made, Policy):
        made.spec = made.spec or spec
        made.checkpoint_hash = made.checkpoint_hash or digest
        return made
    if callable(made):
        return CallablePolicy(made, spec, digest, factory=getattr(module, attr))
    raise PolicySpecError(f"policy {spec!r}: {attr}() returned {type(made).__name__}; expected an "
                          f"eval.policies.Policy or a callable (obs, info) -> action")


# training stages after which a staged policy still cannot act (Video Policy's autoencoder and video model)
NOT_ACTING_STAGES = ("vae", "video")


def _load_checkpoint_dir(spec: str, path: Path) -> Policy:
    import vp_agent

    try:
        stage = json.loads((path / "config.json").read_text()).get("stage")
    except (OSError, ValueError):
        stage = None  # load_policy says what is wrong with the folder
    if stage in NOT_ACTING_STAGES:
        raise PolicySpecError(
            f"policy {spec!r}: {path} was saved after the {stage!r} training stage: its action head never trained, "
            f"so it cannot act (evaluate the run's checkpoints/last; a video-pretraining run has no head: export it "
            f"with python -m vp_agent.export_video and train from it with policy.config.video_model=<folder>)")
    try:
        policy = vp_agent.load_policy(str(path))
    except vp_agent.CheckpointError as exc:  # a clear error before any rollout, as for every other spec
        raise PolicySpecError(f"policy {spec!r}: {exc}") from exc
    policy.spec, policy.checkpoint_hash = spec, sha256_dir(path)
    policy.training_record = training_record(path)  # not `training`: that is torch's train/eval flag
    return policy


def checkpoint_method(cfg: dict[str, Any]) -> str | None:
    """The method a checkpoint's ``config.json`` describes: the policy name (``bc``, ``diffusion``,
    ``video_policy``), with ``_state`` for a state-only policy on the privileged state (``bc_state``) and
    ``_privileged`` for one that reads the privileged state beside the image (a reference too), and
    ``video_policy_pretrained`` for a Video Policy whose video model started from a pretrained one
    (``video_model`` or ``unet_path``)."""
    name = cfg.get("policy")
    config = cfg.get("config", {})
    if name and config.get("state_source") == "privileged":
        return f"{name}_state" if config.get("use_image", True) is False else f"{name}_privileged"
    if name == "video_policy" and (config.get("video_model") or config.get("unet_path")):
        return "video_policy_pretrained"
    return name


def training_recipe(train: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The recipe of a training config (``vp-train``'s composed config): every setting that is not the seed,
    the data budget or bookkeeping, and its 8-hex hash. Two runs of one recipe share the hash whatever their
    seed, budget, threads or folders."""
    bookkeeping = {"seed", "episodes_per_task", "out_dir", "save_every", "log_every", "threads", "device",
                   "tensorboard", "init_from", "data", "tasks", "keep_every"}
    # settings added later count only when they differ from their default, so the recipes of runs made
    # before they existed keep their hash
    later_defaults = {"lr_schedule": "constant", "warmup_steps": 0, "grad_clip": None, "precision": "fp32"}
    later_policy_defaults = {"parameterization": "edm", "svd_time_ids": [6.0, 127.0, 0.02], "pool": "mean",
                             "video_model": None, "finetune_vae": False, "ema_power": None}
    recipe = {k: v for k, v in train.items() if k not in bookkeeping
              and not (k in later_defaults and v == later_defaults[k])}
    policy_config = (recipe.get("policy") or {}).get("config")
    if isinstance(policy_config, dict):
        def is_later_default(k, v):
            return k in later_policy_defaults and (list(v) if isinstance(v, (list, tuple)) else v) \
                == later_policy_defaults[k]

        recipe["policy"] = {**recipe["policy"], "config": {
            k: v for k, v in policy_config.items() if not is_later_default(k, v)}}
    if "stage_steps" in train.get("policy", {}).get("config", {}):  # staged policies: steps in their config
        recipe.pop("steps", None), recipe.pop("batch_size", None)
    return recipe, sha256_text(json.dumps(recipe, sort_keys=True, default=str))[:8]


def training_record(path: Path) -> dict[str, Any] | None:
    """What a vp_agent checkpoint was trained on, for the run's manifest (the leaderboard's sample-efficiency
    section reads it): method, demonstrations per task, seed, the recipe (every training setting that is not
    the seed, the data budget or bookkeeping) and its hash. ``None`` when ``config.json`` lacks the record."""
    try:
        cfg = json.loads((path / "config.json").read_text())
        train = cfg["train_config"]
    except (OSError, ValueError, KeyError):
        return None
    datasets = cfg.get("datasets", {})
    action_free = sorted(r for r, m in datasets.items() if m.get("settings", {}).get("drop_actions"))
    labelled = [t.get("episodes_kept", 0) for r, m in datasets.items() if r not in action_free
                for t in m.get("tasks", {}).values()]
    budget = train.get("episodes_per_task")  # None: every episode of the datasets
    per_task = min(labelled) if labelled else None
    if budget:
        per_task = budget if per_task is None else min(budget, per_task)
    recipe, recipe_hash = training_recipe(train)
    demo_tasks = sorted({t for r, m in datasets.items() if r not in action_free for t in m.get("tasks", {})})
    # experts past version 1 behind the demos (vp-data records them per task; none: every expert as first shipped)
    demo_experts = {t: int(e["expert_version"]) for m in datasets.values() for t, e in m.get("tasks", {}).items()
                    if isinstance(e, dict) and e.get("expert_version", 1) != 1}
    wanted = set(train.get("tasks") or ())  # vp-train tasks=[...] keeps only those of the datasets
    if wanted:
        demo_tasks = [t for t in demo_tasks if t in wanted]
    return {"method": checkpoint_method(cfg), "episodes_per_task": per_task, "seed": train.get("seed"),
            "action_free_data": action_free, "demo_tasks": demo_tasks,
            **({"demo_experts": dict(sorted(demo_experts.items()))} if demo_experts else {}),
            "image_sizes": sorted({int(m["settings"]["size"]) for m in datasets.values()
                                   if isinstance(m.get("settings", {}).get("size"), int)}),
            "trained_steps": cfg.get("trained_steps"),
            # the weights of a pretrained video model the recipe names by path (None: none, or not recorded)
            "video_model_sha256": (cfg.get("video_model") or {}).get("sha256"),
            "recipe_hash": recipe_hash, "recipe": recipe}


def load_policy_spec(spec: str) -> Policy:
    """Build the policy a spec names (table in the module docstring); every error is a
    :class:`PolicySpecError` naming the spec and the valid kinds, raised before any rollout."""
    spec = str(spec).strip()
    if spec == "expert":
        return ExpertPolicy(spec)
    if spec == "random":
        return RandomPolicy(spec)
    if spec.startswith("sb3:"):
        return _load_sb3(spec)
    if spec.startswith("py:"):
        return _load_py(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_checkpoint_dir(spec, path)
    if "/" in spec or spec.startswith("."):
        raise PolicySpecError(f"policy {spec!r}: checkpoint dir {str(path)!r} does not exist")
    raise PolicySpecError(f"unknown policy spec {spec!r}; valid: {', '.join(SPEC_KINDS)}")


def policy_slug(spec: str) -> str:
    """A file-system-friendly name for a spec (the default run directory's last part)."""
    name = Path(spec.split(":")[-1]).stem if ":" in spec or "/" in spec else spec
    kind = spec.split(":")[0] if ":" in spec else ""
    slug = f"{kind}-{name}" if kind and kind != name else name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in slug) or "policy"

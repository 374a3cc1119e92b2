"""Trial → PlanDefinition: the study's arms, the interventions each arm receives, and the dose
levels the text states, as Quantities.

One action per arm (id `arm-N`, code: R5 arm type), with one sub-action per intervention given in
that arm (id `arm-N-intervention-M`, code: CT.gov intervention type). Interventions linked to no arm
are top-level actions (id `intervention-M`). Element ids are unique within the resource: an
intervention given in several arms appears once under each, with that arm's prefix. Dose levels
are `dose-level` extensions (valueQuantity) on the intervention's action; R4 PlanDefinition has no
element for them.
"""

from __future__ import annotations

import re
from typing import Any

from fhirconv.mapping import dose, ids, systems
from fhirconv.mapping.context import MappingContext
from fhirconv.model import Arm, Intervention

Json = dict[str, Any]

DOSE_LEVEL = systems.extension("dose-level")
OTHER_NAME = systems.extension("intervention-other-name")


def plan_definition_id(nct_id: str) -> str:
    return f"{nct_id}-plan"


def plan_definition_reference(nct_id: str) -> dict[str, str]:
    return ids.reference("PlanDefinition", plan_definition_id(nct_id))


def _intervention_key(name: str) -> str:
    return ids.normalize_key(name)


def _arm_gives(arm: Arm, intervention: Intervention) -> bool:
    """API v2 arms name interventions as "TYPE: Name"; other formats by plain name."""
    wanted = _intervention_key(intervention.name)
    for named in arm.intervention_names:
        plain = re.sub(r"^[A-Za-z][A-Za-z _]*:\s*", "", named)
        if _intervention_key(plain) == wanted or _intervention_key(named) == wanted:
            return True
    return ids.normalize_key(arm.label) in {ids.normalize_key(a) for a in intervention.arm_labels}


def arm_type_concept(ctx: MappingContext, arm: Arm) -> Json | None:
    if arm.type is None:
        return None
    concept = ctx.ctgov_concept("ArmGroupType", arm.type)
    assert concept is not None
    target = ctx.lookup("arm-type.json", arm.type)
    if target:
        concept["coding"].insert(
            0, {"system": systems.ARM_TYPE, "code": target["code"], "display": target["display"]}
        )
    return concept


def _dose_texts(ctx: MappingContext, intervention: Intervention, arms: list[Arm]) -> list[str]:
    texts = [t for t in (intervention.description, *(a.description for a in arms)) if t]
    # Study-level descriptions often state the dose levels ("4 dose levels (15x10^6 …)"); use
    # only their sentences that speak of doses or name this intervention.
    name = intervention.name.lower()
    for description in (ctx.trial.brief_summary, ctx.trial.detailed_description):
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", description or ""):
            lowered = sentence.lower()
            if "dose" in lowered or "dosing" in lowered or name in lowered:
                texts.append(sentence)
    return texts


def intervention_action(
    ctx: MappingContext,
    intervention: Intervention,
    number: int,
    arms: list[Arm],
    id_prefix: str = "",
) -> Json:
    action: Json = {"id": f"{id_prefix}intervention-{number}", "title": intervention.name}
    extensions: list[Json] = [
        {"url": OTHER_NAME, "valueString": name} for name in intervention.other_names
    ]
    extensions += [
        {"url": DOSE_LEVEL, "valueQuantity": level.quantity()}
        for level in dose.dose_levels(_dose_texts(ctx, intervention, arms))
    ]
    if extensions:
        action["extension"] = extensions
    if intervention.description:
        action["description"] = intervention.description
    concept = ctx.ctgov_concept("InterventionType", intervention.type)
    if concept:
        action["code"] = [concept]
    return action


def to_plan_definition(ctx: MappingContext) -> Json | None:
    trial = ctx.trial
    if not trial.arms and not trial.interventions:
        return None
    numbered = list(enumerate(trial.interventions, 1))
    arms_of = {
        number: [arm for arm in trial.arms if _arm_gives(arm, intervention)]
        for number, intervention in numbered
    }
    actions: list[Json] = []
    for arm_number, arm in enumerate(trial.arms, 1):
        arm_id = f"arm-{arm_number}"
        action: Json = {"id": arm_id, "title": arm.label}
        if arm.description:
            action["description"] = arm.description
        concept = arm_type_concept(ctx, arm)
        if concept:
            action["code"] = [concept]
        given = [
            intervention_action(ctx, intervention, number, arms_of[number], f"{arm_id}-")
            for number, intervention in numbered
            if arm in arms_of[number]
        ]
        if given:
            action["action"] = given
        actions.append(action)
    for number, intervention in numbered:
        if not arms_of[number]:
            actions.append(intervention_action(ctx, intervention, number, []))
    title = trial.brief_title or trial.nct_id
    return {
        "resourceType": "PlanDefinition",
        "id": plan_definition_id(trial.nct_id),
        "identifier": [
            {"system": systems.STUDY_PART_KEY, "value": f"{trial.nct_id}/plan-definition"}
        ],
        "title": f"Arms and interventions: {title}",
        "type": {
            "coding": [
                {
                    "system": systems.PLAN_DEFINITION_TYPE,
                    "code": "clinical-protocol",
                    "display": "Clinical Protocol",
                }
            ]
        },
        "status": "active",
        "action": actions,
    }

"""Trial → Practitioner and PractitionerRole: overall officials (investigators), the responsible
investigator, and named central and site contacts.

A Practitioner is keyed on name and affiliation (the registry has no person identifiers), so the
same investigator named by many studies is one resource. A PractitionerRole is that person at an
organization or site in a role, with the role's contact details.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fhirconv.mapping import ids, systems
from fhirconv.mapping.context import MappingContext
from fhirconv.mapping.location import location_reference
from fhirconv.mapping.organization import organization_reference
from fhirconv.model import Code, ContactPoint, Site

Json = dict[str, Any]

# Contact "names" that are offices or companies rather than people get no Practitioner.
_NOT_A_PERSON = re.compile(
    r"\b(clinical trials?|trial|study|studies|call cent(er|re)|information|desk|department|"
    r"office|unit|team|center|centre|inc|ltd|llc|gmbh|corp|corporation|company|pharma\w*|"
    r"hospital|universit\w*|institute|foundation|recruitment|registry|disclosure|medical affairs|"
    r"contact|coordinator|investigator|sponsor|services|group|program(me)?)\b\.?",
    re.IGNORECASE,
)
_DEGREE = re.compile(
    r"^(m\.?d\.?|ph\.?d\.?|md|phd|mph|msc|ms|ma|bsc|rn|np|pa-c|do|dds|dmd|pharmd|mbbs|frcp\w*|"
    r"facp|mba|bs|ba|mscr|ccrp|cnm|lcsw|psyd|drph|mhs|mbchb|dr\.? ?med\.?|prof\.?|m\.?b\.?)$",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^(dr|prof|professor|mr|mrs|ms|miss)\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class Person:
    """A named person in a role, as the study lists them."""

    name: str
    role: Code | None
    affiliation: str | None = None  # organization name
    site: Site | None = None
    phone: str | None = None
    phone_ext: str | None = None
    email: str | None = None
    is_person: bool = True  # False: a site contact that names an office, or no one

    @property
    def practitioner_id(self) -> str:
        return ids.hashed_id(
            "prac", ids.practitioner_key(self.name, self.affiliation or self._site_facility)
        )

    @property
    def _site_facility(self) -> str | None:
        return self.site.facility if self.site else None

    @property
    def role_id(self) -> str:
        key = ids.identity_key(
            self.practitioner_id,
            self.affiliation,
            self._site_facility,
            self.role.code if self.role else None,
            self.phone,
            self.phone_ext,
            self.email,
        )
        return ids.hashed_id("role", key)


def is_person_name(name: str | None) -> bool:
    return bool(
        name and re.search(r"[A-Za-z\u00C0-\uFFFF]", name) and not _NOT_A_PERSON.search(name)
    )


def people(ctx: MappingContext) -> Iterator[Person]:
    """Every person the trial names, in a stable order."""
    trial = ctx.trial
    for official in trial.officials:
        yield Person(name=official.name, role=official.role, affiliation=official.affiliation)
    party = trial.responsible_party
    if party and party.investigator_name and is_person_name(party.investigator_name):
        yield Person(
            name=party.investigator_name,
            role=party.type,
            affiliation=party.investigator_affiliation,
        )
    for contact in trial.central_contacts:
        if contact.name and is_person_name(contact.name):
            yield _contact_person(contact, None)
    for site in trial.sites:
        for contact in site.contacts:
            if contact.name and is_person_name(contact.name):
                yield _contact_person(contact, site)


def site_offices(ctx: MappingContext) -> Iterator[Person]:
    """Site contacts that name an office ("Clinical Trials Unit") or no one, but give a role, a
    phone or an e-mail: PractitionerRoles without a Practitioner (see `to_practitioner_role`)."""
    for site in ctx.trial.sites:
        for contact in site.contacts:
            if is_person_name(contact.name):
                continue
            if contact.name or contact.phone or contact.phone_ext or contact.email:
                yield _contact_person(contact, site, is_person=False)


def _contact_person(contact: ContactPoint, site: Site | None, is_person: bool = True) -> Person:
    return Person(
        is_person=is_person,
        name=contact.name or "",
        role=contact.role,
        site=site,
        phone=contact.phone,
        phone_ext=contact.phone_ext,
        email=contact.email,
    )


def human_name(text: str) -> Json:
    """Split "Dr. Jane A. Doe, MD, PhD" into prefix, given, family and suffix; keep the text."""
    name: Json = {"text": text}
    head, *suffixes = [part.strip() for part in text.split(",")]
    words = head.split()
    prefixes = []
    while words and _PREFIX.match(words[0]):
        prefixes.append(words.pop(0))
    degrees = [s for s in suffixes if s]
    while len(words) > 1 and _DEGREE.match(words[-1]):
        degrees.insert(0, words.pop())
    if words:
        name["family"] = words[-1]
        if len(words) > 1:
            name["given"] = words[:-1]
    if prefixes:
        name["prefix"] = prefixes
    if degrees:
        name["suffix"] = degrees
    return name


def telecom(phone: str | None, phone_ext: str | None, email: str | None) -> list[Json]:
    points: list[Json] = []
    if phone or phone_ext:
        value = f"{phone} ext. {phone_ext}" if phone and phone_ext else phone or f"ext. {phone_ext}"
        points.append({"system": "phone", "value": value, "use": "work"})
    if email:
        points.append({"system": "email", "value": email, "use": "work"})
    return points


def practitioner_reference(person: Person) -> dict[str, str]:
    return ids.reference("Practitioner", person.practitioner_id, person.name)


def role_reference(person: Person) -> dict[str, str]:
    return ids.reference("PractitionerRole", person.role_id, person.name)


def role_concept(ctx: MappingContext, role: Code | None) -> Json | None:
    if role is None:
        return None
    target = ctx.lookup("official-role.json", role)
    concept: Json = {"text": role.code.replace("_", " ").lower()}
    if target:
        concept["coding"] = [
            {"system": systems.PARTY_ROLE, "code": target["code"], "display": target["display"]}
        ]
        concept["text"] = target["display"]
    return concept


def to_practitioner(person: Person) -> Json:
    return {
        "resourceType": "Practitioner",
        "id": person.practitioner_id,
        "identifier": [
            {
                "system": systems.PRACTITIONER_KEY,
                "value": ids.practitioner_key(
                    person.name,
                    person.affiliation or (person.site.facility if person.site else None),
                ),
            }
        ],
        "active": True,
        "name": [human_name(person.name)],
    }


def to_practitioner_role(ctx: MappingContext, person: Person) -> Json:
    """The person in their role. An office contact has no Practitioner: its name is kept as the
    `practitioner` reference's display alone (R4 PractitionerRole has no other place for it)."""
    resource: Json = {"resourceType": "PractitionerRole", "id": person.role_id, "active": True}
    if person.is_person:
        resource["practitioner"] = practitioner_reference(person)
    elif person.name:
        resource["practitioner"] = {"display": person.name}
    if person.affiliation:
        resource["organization"] = organization_reference(person.affiliation)
    elif person.site and person.site.facility:
        resource["organization"] = organization_reference(person.site.facility)
    concept = role_concept(ctx, person.role)
    if concept:
        resource["code"] = [concept]
    if person.site:
        resource["location"] = [location_reference(person.site)]
    points = telecom(person.phone, person.phone_ext, person.email)
    if points:
        resource["telecom"] = points
    return resource


def to_practitioners_and_roles(ctx: MappingContext) -> list[Json]:
    practitioners: dict[str, Json] = {}
    roles: dict[str, Json] = {}
    for person in people(ctx):
        practitioners.setdefault(person.practitioner_id, to_practitioner(person))
        roles.setdefault(person.role_id, to_practitioner_role(ctx, person))
    for office in site_offices(ctx):
        roles.setdefault(office.role_id, to_practitioner_role(ctx, office))
    return [*practitioners.values(), *roles.values()]

"""ClinicalTrials.gov API v2 JSON → `Trial`.

Accepts a single study object, a page (`{"studies": [...]}`), a JSON array of studies, or NDJSON
(one study per line). Field paths in errors are API v2 paths (`protocolSection.statusModule…`).
Each study is first conformed to the shapes the reader expects (`json_shapes.conform`: wrong shapes
are coerced or ignored with a warning naming the field), so reading it never meets a surprise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import ValidationError

from fhirconv.errors import FieldError, InputError, RecordError
from fhirconv.jsonio import json_documents, parse_json
from fhirconv.model import (
    AgeLimit,
    Arm,
    AvailableIpd,
    Code,
    ContactPoint,
    Design,
    Eligibility,
    GeoPoint,
    Intervention,
    Investigator,
    IpdSharing,
    Link,
    MeshTerm,
    Organization,
    Outcome,
    Oversight,
    PartialDate,
    Reference,
    ResponsibleParty,
    Retraction,
    SecondaryId,
    Site,
    SourceRef,
    Trial,
)
from fhirconv.sources.json_shapes import conform, shape_of
from fhirconv.sources.record import read_record

FORMAT = "ctgov-json"
Json = dict[str, Any]


def read_text(text: str, file: str) -> Iterator[Trial | RecordError]:
    """Yield one `Trial` (or `RecordError`) per study found in `text`."""
    for position, study in raw_studies(text, file):
        yield study_to_trial(study, file, position)


def raw_studies(text: str, file: str) -> Iterator[tuple[str, Json | RecordError]]:
    """(position, study object) for every study in `text`; what cannot be read as a RecordError.

    A text with no study at all (empty, `[]`, `{"studies": []}`) is one RecordError, so a run
    over it never reports success for converting nothing."""
    found = False
    for line, document in json_documents(text):
        position = "#1" if line is None else f"line {line}"
        if isinstance(document, InputError):
            found = True
            record = position if line is not None else _lone_nct_id(text)
            yield position, RecordError(file, record, None, str(document))
            continue
        for where, study in _studies_in(document, position, whole=line is None):
            found = True
            yield where, study
    if not found:
        what = "the file is empty" if not text.strip("\ufeff \t\r\n") else "no studies in it"
        yield "#1", RecordError(file, None, None, f"no records: {what}")


def _studies_in(document: Any, position: str, *, whole: bool) -> Iterator[tuple[str, Any]]:
    """The studies of one JSON document: itself, a page's `studies`, or an array's items."""
    if isinstance(document, dict) and isinstance(document.get("studies"), list):
        document = document["studies"]
    if isinstance(document, list):
        for index, study in enumerate(document, 1):
            yield (f"#{index}" if whole else f"{position} #{index}"), study
    else:
        yield position, document


def read_line(text: str, file: str, number: int) -> Iterator[Trial | RecordError]:
    """The studies on line `number` of an NDJSON stream (read one line at a time)."""
    position = f"line {number}"
    try:
        document = parse_json(text, number)
    except InputError as error:
        yield RecordError(file, position, None, str(error))
        return
    found = False
    for where, study in _studies_in(document, position, whole=False):
        found = True
        yield study_to_trial(study, file, where)
    if not found:
        yield RecordError(file, position, None, "no records: no studies in it")


def _lone_nct_id(text: str) -> str | None:
    """The NCT id of an unparseable text holding one study, to name it in the error."""
    found = set(re.findall(r'"nctId"\s*:\s*"(NCT\d{8})"', text))
    return found.pop() if len(found) == 1 else None


def study_to_trial(
    study: Json | RecordError, file: str, position: str = "#1"
) -> Trial | RecordError:
    """Convert one API v2 study object; never raises for bad data, returns a `RecordError`."""
    if isinstance(study, RecordError):
        return study
    if not isinstance(study, dict) or "protocolSection" not in study:
        found = shape_of(study)
        return RecordError(
            file,
            position,
            "protocolSection",
            f"not a ClinicalTrials.gov API v2 study (found {found}, without protocolSection)",
        )
    return read_record(_StudyReader(study, file, position))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _texts(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(t for t in (_text(v) for v in values) if t)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class _StudyReader:
    """Reads one study; knows the API v2 paths so errors can name them."""

    def __init__(self, study: Json, file: str, position: str) -> None:
        self.raw = study
        self.study: Json = {}
        self.protocol: Json = {}
        self.derived: Json = {}
        self.shape_warnings: list[tuple[str, str]] = []
        protocol = study.get("protocolSection")
        ident = protocol.get("identificationModule") if isinstance(protocol, dict) else None
        nct_id = ident.get("nctId") if isinstance(ident, dict) else None
        self.record = (nct_id.strip() if isinstance(nct_id, str) else None) or position
        self.file = file

    def conform(self) -> None:
        """Put every known path in its expected shape (FieldError when the NCT id's path is
        unusable); what had to change becomes the Trial's reader warnings."""
        conformed = conform(self.raw)
        self.study = conformed.study
        self.protocol = self.study.get("protocolSection") or {}
        self.derived = self.study.get("derivedSection") or {}
        self.shape_warnings = conformed.warnings

    def module(self, name: str) -> Json:
        value = self.protocol.get(name)
        return value if isinstance(value, dict) else {}

    def code(self, value: Any, field: str) -> Code | None:
        text = _text(value)
        return Code(code=text, field=field) if text else None

    def codes(self, values: Any, field: str) -> tuple[Code, ...]:
        return tuple(Code(code=t, field=field) for t in _texts(values))

    def date(self, struct: Any, field: str) -> PartialDate | None:
        """A `…DateStruct` ({date, type}) or a plain date string."""
        if isinstance(struct, dict):
            value, kind = _text(struct.get("date")), _text(struct.get("type"))
            field = f"{field}.date"
        else:
            value, kind = _text(struct), None
        if value is None:
            return None
        try:
            return PartialDate(
                value=value,
                field=field,
                estimated=None if kind is None else kind.upper() in {"ESTIMATED", "ANTICIPATED"},
            )
        except ValidationError as error:
            raise FieldError(field, f"impossible date {value!r}") from error

    def organization(self, value: Any, field: str) -> Organization | None:
        if not isinstance(value, dict):
            return None
        name = _text(value.get("name")) or _text(value.get("fullName"))
        if not name:
            return None
        return Organization(name=name, org_class=self.code(value.get("class"), f"{field}.class"))

    def contact(self, value: Json, field: str) -> ContactPoint:
        return ContactPoint(
            name=_text(value.get("name")),
            role=self.code(value.get("role"), f"{field}.role"),
            phone=_text(value.get("phone")),
            phone_ext=_text(value.get("phoneExt")),
            email=_text(value.get("email")),
        )

    def age(self, value: Any, field: str) -> AgeLimit | None:
        text = _text(value)
        if not text:
            return None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text)
        if not match:
            raise FieldError(field, f"unreadable age {text!r} (expected e.g. '18 Years')")
        return AgeLimit(value=float(match.group(1)), unit=match.group(2).capitalize(), field=field)

    def meshes(self, module: str, key: str) -> tuple[MeshTerm, ...]:
        browse = self.derived.get(module) or {}
        return tuple(
            MeshTerm(id=str(m["id"]), term=str(m["term"]))
            for m in browse.get(key) or []
            if isinstance(m, dict) and m.get("id") and m.get("term")
        )

    def trial(self) -> Trial:
        self.conform()
        ident = self.module("identificationModule")
        nct_id = _text(ident.get("nctId"))
        if not nct_id:
            raise FieldError("protocolSection.identificationModule.nctId", "record has no NCT id")
        if not re.fullmatch(r"NCT\d{8}", nct_id):
            raise FieldError(
                "protocolSection.identificationModule.nctId", f"not an NCT id: {nct_id!r}"
            )
        self.record = nct_id
        source = SourceRef(file=self.file, record=nct_id, format=FORMAT)
        status = self.module("statusModule")
        sp = "protocolSection.statusModule"
        sponsors = self.module("sponsorCollaboratorsModule")
        description = self.module("descriptionModule")
        conditions = self.module("conditionsModule")
        org_info = ident.get("orgStudyIdInfo") or {}
        expanded = status.get("expandedAccessInfo") or {}
        misc = self.derived.get("miscInfoModule") or {}
        return Trial(
            source=source,
            nct_id=nct_id,
            nct_id_aliases=_texts(ident.get("nctIdAliases")),
            org_study_id=_text(org_info.get("id")),
            org_study_id_type=_text(org_info.get("type")),
            org_study_id_link=_text(org_info.get("link")),
            secondary_ids=self.secondary_ids(ident),
            brief_title=_text(ident.get("briefTitle")),
            official_title=_text(ident.get("officialTitle")),
            acronym=_text(ident.get("acronym")),
            organization=self.organization(
                ident.get("organization"), "protocolSection.identificationModule.organization"
            ),
            overall_status=self.code(status.get("overallStatus"), f"{sp}.overallStatus"),
            last_known_status=self.code(status.get("lastKnownStatus"), f"{sp}.lastKnownStatus"),
            why_stopped=_text(status.get("whyStopped")),
            status_verified=self.date(status.get("statusVerifiedDate"), f"{sp}.statusVerifiedDate"),
            start_date=self.date(status.get("startDateStruct"), f"{sp}.startDateStruct"),
            primary_completion_date=self.date(
                status.get("primaryCompletionDateStruct"), f"{sp}.primaryCompletionDateStruct"
            ),
            completion_date=self.date(
                status.get("completionDateStruct"), f"{sp}.completionDateStruct"
            ),
            first_submitted=self.date(
                status.get("studyFirstSubmitDate"), f"{sp}.studyFirstSubmitDate"
            ),
            first_submitted_qc=self.date(
                status.get("studyFirstSubmitQcDate"), f"{sp}.studyFirstSubmitQcDate"
            ),
            first_posted=self.date(
                status.get("studyFirstPostDateStruct"), f"{sp}.studyFirstPostDateStruct"
            ),
            results_first_submitted=self.date(
                status.get("resultsFirstSubmitDate"), f"{sp}.resultsFirstSubmitDate"
            ),
            results_first_submitted_qc=self.date(
                status.get("resultsFirstSubmitQcDate"), f"{sp}.resultsFirstSubmitQcDate"
            ),
            results_first_posted=self.date(
                status.get("resultsFirstPostDateStruct"), f"{sp}.resultsFirstPostDateStruct"
            ),
            disposition_first_submitted=self.date(
                status.get("dispFirstSubmitDate"), f"{sp}.dispFirstSubmitDate"
            ),
            disposition_first_submitted_qc=self.date(
                status.get("dispFirstSubmitQcDate"), f"{sp}.dispFirstSubmitQcDate"
            ),
            disposition_first_posted=self.date(
                status.get("dispFirstPostDateStruct"), f"{sp}.dispFirstPostDateStruct"
            ),
            last_update_submitted=self.date(
                status.get("lastUpdateSubmitDate"), f"{sp}.lastUpdateSubmitDate"
            ),
            last_update_posted=self.date(
                status.get("lastUpdatePostDateStruct"), f"{sp}.lastUpdatePostDateStruct"
            ),
            delayed_posting=_bool(status.get("delayedPosting")),
            results_waived=_bool(status.get("resultsWaived")),
            has_expanded_access=_bool(expanded.get("hasExpandedAccess")),
            expanded_access_nct_id=_text(expanded.get("nctId")),
            expanded_access_status=self.code(
                expanded.get("statusForNctId"), f"{sp}.expandedAccessInfo.statusForNctId"
            ),
            has_results=_bool(self.study.get("hasResults")),
            lead_sponsor=self.organization(
                sponsors.get("leadSponsor"),
                "protocolSection.sponsorCollaboratorsModule.leadSponsor",
            ),
            collaborators=self.collaborators(sponsors),
            responsible_party=self.responsible_party(sponsors),
            oversight=self.oversight(),
            brief_summary=_text(description.get("briefSummary")),
            detailed_description=_text(description.get("detailedDescription")),
            conditions=_texts(conditions.get("conditions")),
            keywords=_texts(conditions.get("keywords")),
            condition_meshes=self.meshes("conditionBrowseModule", "meshes"),
            condition_ancestors=self.meshes("conditionBrowseModule", "ancestors"),
            intervention_meshes=self.meshes("interventionBrowseModule", "meshes"),
            intervention_ancestors=self.meshes("interventionBrowseModule", "ancestors"),
            design=self.design(),
            arms=self.arms(),
            interventions=self.interventions(),
            outcomes=self.outcomes(),
            eligibility=self.eligibility(),
            officials=self.officials(),
            central_contacts=self.central_contacts(),
            sites=self.sites(),
            countries=self.countries(),
            removed_countries=_texts(misc.get("removedCountries")),
            references=self.references(),
            see_also_links=self.see_also_links(),
            available_ipds=self.available_ipds(),
            ipd_sharing=self.ipd_sharing(),
            data_version=self.date(
                misc.get("versionHolder"), "derivedSection.miscInfoModule.versionHolder"
            ),
            reader_warnings=tuple(
                f"{source.describe(path)}: {message}" for path, message in self.shape_warnings
            ),
        )

    def secondary_ids(self, ident: Json) -> tuple[SecondaryId, ...]:
        field = "protocolSection.identificationModule.secondaryIdInfos"
        result = []
        for info in ident.get("secondaryIdInfos") or []:
            value = _text(info.get("id"))
            if value:
                result.append(
                    SecondaryId(
                        id=value,
                        type=self.code(info.get("type"), f"{field}.type"),
                        domain=_text(info.get("domain")),
                        link=_text(info.get("link")),
                    )
                )
        return tuple(result)

    def collaborators(self, sponsors: Json) -> tuple[Organization, ...]:
        field = "protocolSection.sponsorCollaboratorsModule.collaborators"
        orgs = (self.organization(c, field) for c in sponsors.get("collaborators") or [])
        return tuple(o for o in orgs if o)

    def responsible_party(self, sponsors: Json) -> ResponsibleParty | None:
        party = sponsors.get("responsibleParty")
        if not isinstance(party, dict) or not party:
            return None
        return ResponsibleParty(
            type=self.code(
                party.get("type"),
                "protocolSection.sponsorCollaboratorsModule.responsibleParty.type",
            ),
            investigator_name=_text(party.get("investigatorFullName")),
            investigator_title=_text(party.get("investigatorTitle")),
            investigator_affiliation=_text(party.get("investigatorAffiliation")),
            old_name_title=_text(party.get("oldNameTitle")),
            old_organization=_text(party.get("oldOrganization")),
        )

    def oversight(self) -> Oversight | None:
        module = self.module("oversightModule")
        if not module:
            return None
        return Oversight(
            has_dmc=_bool(module.get("oversightHasDmc")),
            is_fda_regulated_drug=_bool(module.get("isFdaRegulatedDrug")),
            is_fda_regulated_device=_bool(module.get("isFdaRegulatedDevice")),
            is_unapproved_device=_bool(module.get("isUnapprovedDevice")),
            is_us_export=_bool(module.get("isUsExport")),
            is_ppsd=_bool(module.get("isPpsd")),
            fdaaa801_violation=_bool(module.get("fdaaa801Violation")),
        )

    def design(self) -> Design:
        module = self.module("designModule")
        dp = "protocolSection.designModule"
        info = module.get("designInfo") or {}
        masking = info.get("maskingInfo") or {}
        enrollment = module.get("enrollmentInfo") or {}
        bio_spec = module.get("bioSpec") or {}
        access = module.get("expandedAccessTypes") or {}
        count = enrollment.get("count")
        if count is not None and not isinstance(count, int):
            try:
                count = int(str(count))
            except ValueError as error:
                raise FieldError(
                    f"{dp}.enrollmentInfo.count", f"enrollment is not a number: {count!r}"
                ) from error
        enrollment_type = _text(enrollment.get("type"))
        return Design(
            study_type=self.code(module.get("studyType"), f"{dp}.studyType"),
            phases=self.codes(module.get("phases"), f"{dp}.phases"),
            allocation=self.code(info.get("allocation"), f"{dp}.designInfo.allocation"),
            intervention_model=self.code(
                info.get("interventionModel"), f"{dp}.designInfo.interventionModel"
            ),
            intervention_model_description=_text(info.get("interventionModelDescription")),
            primary_purpose=self.code(
                info.get("primaryPurpose"), f"{dp}.designInfo.primaryPurpose"
            ),
            masking=self.code(masking.get("masking"), f"{dp}.designInfo.maskingInfo.masking"),
            masking_description=_text(masking.get("maskingDescription")),
            who_masked=self.codes(
                masking.get("whoMasked"), f"{dp}.designInfo.maskingInfo.whoMasked"
            ),
            observational_model=self.code(
                info.get("observationalModel"), f"{dp}.designInfo.observationalModel"
            ),
            time_perspective=self.code(
                info.get("timePerspective"), f"{dp}.designInfo.timePerspective"
            ),
            enrollment_count=count,
            enrollment_estimated=None
            if enrollment_type is None
            else enrollment_type.upper() in {"ESTIMATED", "ANTICIPATED"},
            patient_registry=_bool(module.get("patientRegistry")),
            target_duration=_text(module.get("targetDuration")),
            bio_spec_retention=self.code(bio_spec.get("retention"), f"{dp}.bioSpec.retention"),
            bio_spec_description=_text(bio_spec.get("description")),
            expanded_access_types=tuple(
                Code(code=key.upper(), field=f"{dp}.expandedAccessTypes.{key}")
                for key, flag in sorted(access.items())
                if flag is True
            ),
        )

    def arms(self) -> tuple[Arm, ...]:
        field = "protocolSection.armsInterventionsModule.armGroups"
        module = self.module("armsInterventionsModule")
        arms = []
        for group in module.get("armGroups") or []:
            label = _text(group.get("label"))
            if not label:
                continue
            arms.append(
                Arm(
                    label=label,
                    type=self.code(group.get("type"), f"{field}.type"),
                    description=_text(group.get("description")),
                    intervention_names=_texts(group.get("interventionNames")),
                )
            )
        return tuple(arms)

    def interventions(self) -> tuple[Intervention, ...]:
        field = "protocolSection.armsInterventionsModule.interventions"
        module = self.module("armsInterventionsModule")
        result = []
        for item in module.get("interventions") or []:
            name = _text(item.get("name"))
            if not name:
                continue
            result.append(
                Intervention(
                    name=name,
                    type=self.code(item.get("type"), f"{field}.type"),
                    description=_text(item.get("description")),
                    other_names=_texts(item.get("otherNames")),
                    arm_labels=_texts(item.get("armGroupLabels")),
                )
            )
        return tuple(result)

    def outcomes(self) -> tuple[Outcome, ...]:
        module = self.module("outcomesModule")
        result = []
        kinds: tuple[Literal["primary", "secondary", "other"], ...] = (
            "primary",
            "secondary",
            "other",
        )
        for kind in kinds:
            for item in module.get(f"{kind}Outcomes") or []:
                measure = _text(item.get("measure"))
                if measure:
                    result.append(
                        Outcome(
                            kind=kind,
                            measure=measure,
                            description=_text(item.get("description")),
                            time_frame=_text(item.get("timeFrame")),
                        )
                    )
        return tuple(result)

    def eligibility(self) -> Eligibility:
        module = self.module("eligibilityModule")
        ep = "protocolSection.eligibilityModule"
        return Eligibility(
            criteria=_text(module.get("eligibilityCriteria")),
            sex=self.code(module.get("sex"), f"{ep}.sex"),
            gender_based=_bool(module.get("genderBased")),
            gender_description=_text(module.get("genderDescription")),
            minimum_age=self.age(module.get("minimumAge"), f"{ep}.minimumAge"),
            maximum_age=self.age(module.get("maximumAge"), f"{ep}.maximumAge"),
            healthy_volunteers=_bool(module.get("healthyVolunteers")),
            std_ages=self.codes(module.get("stdAges"), f"{ep}.stdAges"),
            study_population=_text(module.get("studyPopulation")),
            sampling_method=self.code(module.get("samplingMethod"), f"{ep}.samplingMethod"),
        )

    def officials(self) -> tuple[Investigator, ...]:
        field = "protocolSection.contactsLocationsModule.overallOfficials"
        module = self.module("contactsLocationsModule")
        result = []
        for item in module.get("overallOfficials") or []:
            name = _text(item.get("name"))
            if name:
                result.append(
                    Investigator(
                        name=name,
                        role=self.code(item.get("role"), f"{field}.role"),
                        affiliation=_text(item.get("affiliation")),
                    )
                )
        return tuple(result)

    def central_contacts(self) -> tuple[ContactPoint, ...]:
        field = "protocolSection.contactsLocationsModule.centralContacts"
        module = self.module("contactsLocationsModule")
        return tuple(self.contact(c, field) for c in module.get("centralContacts") or [])

    def sites(self) -> tuple[Site, ...]:
        field = "protocolSection.contactsLocationsModule.locations"
        module = self.module("contactsLocationsModule")
        result = []
        for item in module.get("locations") or []:
            geo = item.get("geoPoint") or {}
            lat, lon = geo.get("lat"), geo.get("lon")
            result.append(
                Site(
                    facility=_text(item.get("facility")),
                    city=_text(item.get("city")),
                    state=_text(item.get("state")),
                    zip=_text(item.get("zip")),
                    country=_text(item.get("country")),
                    status=self.code(item.get("status"), f"{field}.status"),
                    geo=GeoPoint(lat=lat, lon=lon)
                    if isinstance(lat, int | float) and isinstance(lon, int | float)
                    else None,
                    contacts=tuple(
                        self.contact(c, f"{field}.contacts") for c in item.get("contacts") or []
                    ),
                )
            )
        return tuple(result)

    def countries(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for site in self.module("contactsLocationsModule").get("locations") or []:
            country = _text(site.get("country"))
            if country:
                seen.setdefault(country, None)
        return tuple(seen)

    def references(self) -> tuple[Reference, ...]:
        field = "protocolSection.referencesModule.references"
        module = self.module("referencesModule")
        result = []
        for item in module.get("references") or []:
            citation, pmid = _text(item.get("citation")), _text(item.get("pmid"))
            if citation or pmid:
                result.append(
                    Reference(
                        citation=citation,
                        pmid=pmid,
                        type=self.code(item.get("type"), f"{field}.type"),
                        retractions=tuple(
                            Retraction(pmid=_text(r.get("pmid")), source=_text(r.get("source")))
                            for r in item.get("retractions") or []
                            if isinstance(r, dict)
                            and (_text(r.get("pmid")) or _text(r.get("source")))
                        ),
                    )
                )
        return tuple(result)

    def available_ipds(self) -> tuple[AvailableIpd, ...]:
        result = []
        for item in self.module("referencesModule").get("availIpds") or []:
            if not isinstance(item, dict):
                continue
            ipd = AvailableIpd(
                id=_text(item.get("id")),
                type=_text(item.get("type")),
                url=_text(item.get("url")),
                comment=_text(item.get("comment")),
            )
            if ipd.id or ipd.type or ipd.url or ipd.comment:
                result.append(ipd)
        return tuple(result)

    def see_also_links(self) -> tuple[Link, ...]:
        module = self.module("referencesModule")
        return tuple(
            Link(url=url, label=_text(item.get("label")))
            for item in module.get("seeAlsoLinks") or []
            if (url := _text(item.get("url")))
        )

    def ipd_sharing(self) -> IpdSharing | None:
        module = self.module("ipdSharingStatementModule")
        if not module:
            return None
        ip = "protocolSection.ipdSharingStatementModule"
        return IpdSharing(
            sharing=self.code(module.get("ipdSharing"), f"{ip}.ipdSharing"),
            description=_text(module.get("description")),
            info_types=self.codes(module.get("infoTypes"), f"{ip}.infoTypes"),
            time_frame=_text(module.get("timeFrame")),
            access_criteria=_text(module.get("accessCriteria")),
            url=_text(module.get("url")),
        )

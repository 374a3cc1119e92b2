package org.fhirconv.validator;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.hl7.fhir.r4.model.ElementDefinition;
import org.hl7.fhir.r4.model.ElementDefinition.DiscriminatorType;
import org.hl7.fhir.r4.model.ElementDefinition.SlicingRules;
import org.hl7.fhir.r4.model.Enumerations.FHIRVersion;
import org.hl7.fhir.r4.model.Enumerations.PublicationStatus;
import org.hl7.fhir.r4.model.StructureDefinition;
import org.hl7.fhir.r4.model.StructureDefinition.ExtensionContextType;
import org.hl7.fhir.r4.model.StructureDefinition.StructureDefinitionKind;
import org.hl7.fhir.r4.model.StructureDefinition.TypeDerivationRule;
import org.hl7.fhir.r4.model.UriType;

/**
 * StructureDefinitions of the R5 cross-version extensions fhirconv writes, built from the table
 * {@code mappings/r5-cross-version-extensions.json} (R5 cardinalities and types of the elements
 * they stand for), the same table {@code fhirconv validate} checks them against.
 *
 * <p>The validator knows these URLs ({@code http://hl7.org/fhir/5.0/StructureDefinition/extension-
 * ResearchStudy.X}) only through a cross-version path table that ships in the FHIR packages, not in
 * the Maven artifacts, so offline it rejects every one of them as "invalid Version '5.0'". Giving
 * it their definitions, following the cross-version rules (FHIR R5 "versions.html#extensions": an
 * element becomes an extension whose context is the element's parent; a backbone element becomes a
 * complex extension with one sub-extension per child, named by the child), makes it check each use
 * for real: context, sub-extension names, types, cardinalities and reference targets.
 */
final class R5CrossVersionExtensions {

  private static final String BASE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-";
  private static final String CORE = "http://hl7.org/fhir/StructureDefinition/";

  private R5CrossVersionExtensions() {}

  /** One child of an R5 backbone element: its name, cardinality and allowed types. */
  private record Part(String name, int min, String max, String... types) {}

  /**
   * The definitions described by {@code mappings/r5-cross-version-extensions.json}: one entry per
   * R5 element, with either {@code types} (a simple extension) or {@code parts} (a complex one).
   */
  static List<StructureDefinition> load(Path table) throws IOException {
    JsonNode root = new ObjectMapper().readTree(table.toFile());
    List<StructureDefinition> definitions = new ArrayList<>();
    Iterator<Map.Entry<String, JsonNode>> elements = root.get("extensions").fields();
    while (elements.hasNext()) {
      Map.Entry<String, JsonNode> entry = elements.next();
      JsonNode spec = entry.getValue();
      String context = spec.get("context").asText();
      String max = spec.get("max").asText();
      if (spec.has("parts")) {
        List<Part> parts = new ArrayList<>();
        Iterator<Map.Entry<String, JsonNode>> children = spec.get("parts").fields();
        while (children.hasNext()) {
          Map.Entry<String, JsonNode> child = children.next();
          JsonNode part = child.getValue();
          parts.add(
              new Part(
                  child.getKey(),
                  part.get("min").asInt(),
                  part.get("max").asText(),
                  texts(part.get("types"))));
        }
        definitions.add(complex(entry.getKey(), context, max, parts));
      } else {
        definitions.add(simple(entry.getKey(), context, max, texts(spec.get("types"))));
      }
    }
    return definitions;
  }

  private static String[] texts(JsonNode array) {
    List<String> values = new ArrayList<>();
    array.forEach(value -> values.add(value.asText()));
    return values.toArray(new String[0]);
  }

  private static StructureDefinition shell(String element, String context, String max) {
    String url = BASE + element;
    StructureDefinition definition = new StructureDefinition();
    definition.setId("extension-" + element.replace('.', '-'));
    definition.setUrl(url);
    definition.setVersion("5.0.0");
    definition.setName("Extension_" + element.replace('.', '_'));
    definition.setTitle("Cross-version extension for R5 " + element + " in R4");
    definition.setStatus(PublicationStatus.ACTIVE);
    definition.setFhirVersion(FHIRVersion._4_0_1);
    definition.setKind(StructureDefinitionKind.COMPLEXTYPE);
    definition.setAbstract(false);
    definition.setType("Extension");
    definition.setBaseDefinition(CORE + "Extension");
    definition.setDerivation(TypeDerivationRule.CONSTRAINT);
    definition
        .addContext()
        .setType(ExtensionContextType.ELEMENT)
        .setExpression(context);
    ElementDefinition root = element("Extension", "Extension");
    root.setShort("R5 " + element).setDefinition("R5 " + element + " in R4.").setMin(0).setMax(max);
    definition.getDifferential().addElement(root);
    return definition;
  }

  private static StructureDefinition simple(
      String element, String context, String max, String... types) {
    StructureDefinition definition = shell(element, context, max);
    List<ElementDefinition> elements = definition.getDifferential().getElement();
    elements.add(element("Extension.extension", "Extension.extension").setMax("0"));
    elements.add(
        element("Extension.url", "Extension.url").setFixed(new UriType(definition.getUrl())));
    elements.add(typed(element("Extension.value[x]", "Extension.value[x]").setMin(1), types));
    return definition;
  }

  private static StructureDefinition complex(
      String element, String context, String max, List<Part> parts) {
    StructureDefinition definition = shell(element, context, max);
    List<ElementDefinition> elements = definition.getDifferential().getElement();
    ElementDefinition sliced = element("Extension.extension", "Extension.extension");
    sliced
        .getSlicing()
        .setRules(SlicingRules.CLOSED)
        .addDiscriminator()
        .setType(DiscriminatorType.VALUE)
        .setPath("url");
    elements.add(sliced);
    for (Part part : parts) {
      String id = "Extension.extension:" + part.name();
      ElementDefinition slice = element(id, "Extension.extension");
      slice.setSliceName(part.name()).setMin(part.min()).setMax(part.max());
      slice.setShort(element + "." + part.name());
      elements.add(slice);
      elements.add(element(id + ".extension", "Extension.extension.extension").setMax("0"));
      elements.add(
          element(id + ".url", "Extension.extension.url").setFixed(new UriType(part.name())));
      elements.add(
          typed(element(id + ".value[x]", "Extension.extension.value[x]").setMin(1), part.types()));
    }
    elements.add(
        element("Extension.url", "Extension.url").setFixed(new UriType(definition.getUrl())));
    elements.add(element("Extension.value[x]", "Extension.value[x]").setMax("0"));
    return definition;
  }

  private static ElementDefinition element(String id, String path) {
    ElementDefinition element = new ElementDefinition();
    element.setId(id);
    element.setPath(path);
    return element;
  }

  /** Types as written in the R5 definition: "string", or "Reference(A|B)". */
  private static ElementDefinition typed(ElementDefinition element, String... types) {
    for (String type : types) {
      if (type.startsWith("Reference(")) {
        ElementDefinition.TypeRefComponent reference = element.addType().setCode("Reference");
        for (String target : type.substring(10, type.length() - 1).split("\\|")) {
          reference.addTargetProfile(CORE + target);
        }
      } else {
        element.addType().setCode(type);
      }
    }
    return element;
  }
}

package org.fhirconv.validator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * Validates FHIR R4 JSON files with HAPI FHIR's instance validator, offline, in one JVM run.
 *
 * <p>Usage: {@code ValidateBundles [--all] [--xver TABLE.json] [--definitions DIR] FILE_OR_@LIST...}.
 * {@code --definitions} names a folder of StructureDefinition JSON files to know (profiles of
 * implementation guides fhirconv claims, such as the Bulk Data cohort Group). An argument
 * {@code @list.txt} names a file holding one path per line; {@code --xver} names the table of the R5
 * cross-version extensions to define (mappings/r5-cross-version-extensions.json). For each file
 * one JSON line goes to stdout: {@code {"file": ..., "errors": N, "warnings": N, "messages": [{"severity", "location", "message"}]}}
 * (messages of severity warning and above; {@code --all} adds information). Exit status: 0 when no
 * file has an error, 1 when some file has, 2 on a usage or I/O problem.
 *
 * <p>Terminology is offline: the base R4 definitions, in-memory expansion of the small value sets,
 * and HAPI's built-in code systems (UCUM, BCP-47 languages, ISO currencies and countries, MIME
 * types). Extensions whose definition the validator does not have (fhirconv's own) are allowed —
 * their values are still checked against the types of FHIR — while the R5 cross-version
 * ({@code http://hl7.org/fhir/5.0/StructureDefinition/extension-*}) extensions fhirconv writes are
 * checked against their R5 definitions (see {@link R5CrossVersionExtensions}); any other R5
 * cross-version URL stays an error, as the validator has no definition for it offline.
 */
public final class ValidateBundles {

  private ValidateBundles() {}

  public static void main(String[] args) throws IOException {
    boolean all = false;
    Path crossVersionTable = null;
    Path definitions = null;
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--all")) {
        all = true;
      } else if (arg.equals("--xver") && i + 1 < args.length) {
        crossVersionTable = Path.of(args[++i]);
      } else if (arg.equals("--definitions") && i + 1 < args.length) {
        definitions = Path.of(args[++i]);
      } else if (arg.startsWith("@")) {
        for (String line : Files.readAllLines(Path.of(arg.substring(1)), StandardCharsets.UTF_8)) {
          if (!line.isBlank()) {
            files.add(Path.of(line.strip()));
          }
        }
      } else {
        files.add(Path.of(arg));
      }
    }
    if (files.isEmpty()) {
      System.err.println(
          "usage: ValidateBundles [--all] [--xver TABLE.json] [--definitions DIR] FILE_OR_@LIST...");
      System.exit(2);
    }

    FhirContext context = FhirContext.forR4();
    PrePopulatedValidationSupport crossVersion = new PrePopulatedValidationSupport(context);
    if (crossVersionTable != null) {
      R5CrossVersionExtensions.load(crossVersionTable).forEach(crossVersion::addStructureDefinition);
    }
    if (definitions != null) {
      // StructureDefinitions of implementation guides fhirconv claims (the Bulk Data cohort
      // Group), restated as JSON files: the validator has no package cache offline.
      try (var found = Files.list(definitions)) {
        for (Path path : found.filter(p -> p.toString().endsWith(".json")).sorted().toList()) {
          crossVersion.addStructureDefinition(
              context.newJsonParser().parseResource(Files.readString(path, StandardCharsets.UTF_8)));
        }
      }
    }
    ValidationSupportChain support =
        new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            crossVersion,
            new CommonCodeSystemsTerminologyService(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new SnapshotGeneratingValidationSupport(context));
    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(support);
    instanceValidator.setAnyExtensionsAllowed(true);
    instanceValidator.setNoTerminologyChecks(false);
    FhirValidator validator = context.newValidator();
    validator.registerValidatorModule(instanceValidator);

    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    boolean anyError = false;
    boolean ioProblem = false;
    for (Path file : files) {
      String text;
      try {
        text = Files.readString(file, StandardCharsets.UTF_8);
      } catch (IOException e) {
        out.println(
            "{\"file\": " + quote(file.toString()) + ", \"io_error\": " + quote(e.toString()) + "}");
        ioProblem = true;
        continue;
      }
      ValidationResult result = validator.validateWithResult(text);
      int errors = 0;
      int warnings = 0;
      StringBuilder messages = new StringBuilder();
      for (SingleValidationMessage message : result.getMessages()) {
        ResultSeverityEnum severity = message.getSeverity();
        boolean isError =
            severity == ResultSeverityEnum.ERROR || severity == ResultSeverityEnum.FATAL;
        boolean isWarning = severity == ResultSeverityEnum.WARNING;
        if (isError) {
          errors++;
        } else if (isWarning) {
          warnings++;
        } else if (!all) {
          continue;
        }
        if (messages.length() > 0) {
          messages.append(", ");
        }
        messages
            .append("{\"severity\": ")
            .append(quote(severity.getCode()))
            .append(", \"location\": ")
            .append(quote(String.valueOf(message.getLocationString())))
            .append(", \"message\": ")
            .append(quote(String.valueOf(message.getMessage())))
            .append('}');
      }
      anyError |= errors > 0;
      out.println(
          "{\"file\": "
              + quote(file.toString())
              + ", \"errors\": "
              + errors
              + ", \"warnings\": "
              + warnings
              + ", \"messages\": ["
              + messages
              + "]}");
      out.flush();
    }
    out.flush();
    System.exit(ioProblem ? 2 : anyError ? 1 : 0);
  }

  private static String quote(String value) {
    StringBuilder quoted = new StringBuilder(value.length() + 2).append('"');
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      switch (c) {
        case '"' -> quoted.append("\\\"");
        case '\\' -> quoted.append("\\\\");
        case '\n' -> quoted.append("\\n");
        case '\r' -> quoted.append("\\r");
        case '\t' -> quoted.append("\\t");
        default -> {
          if (c < 0x20) {
            quoted.append(String.format("\\u%04x", (int) c));
          } else {
            quoted.append(c);
          }
        }
      }
    }
    return quoted.append('"').toString();
  }
}

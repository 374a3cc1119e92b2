package org.fhirconv.hapi;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Import;

/**
 * Entry point of the fhirconv test server: HAPI FHIR JPA (R4) on an in-memory H2 database,
 * served by embedded Tomcat at {@code http://127.0.0.1:${server.port}/fhir}.
 *
 * <p>All HAPI wiring lives in {@link FhirServerConfig}; Boot settings (bind address, port,
 * excluded auto-configurations) live in {@code application.properties}.
 */
@SpringBootApplication
@Import(FhirServerConfig.class)
public class HapiServerApplication {

	public static void main(String[] args) {
		SpringApplication.run(HapiServerApplication.class, args);
	}
}

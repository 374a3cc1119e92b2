package org.fhirconv.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.Properties;
import javax.sql.DataSource;
import org.apache.commons.dbcp2.BasicDataSource;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

/**
 * HAPI FHIR JPA server wiring for R4. HAPI's own configuration classes supply the DAOs,
 * resource providers, the system provider (transactions), search, paging and the validation
 * support chain; this class supplies what they expect the host application to provide.
 */
@Configuration
@Import({
	// R4 FhirContext, one DAO + resource provider per resource type, R4 system DAO/provider.
	// Through JpaConfig it also brings the validation support chain behind $validate
	// (JpaValidationSupportChain: the base R4 definitions from hapi-fhir-validation-resources-r4,
	// snapshot generation, in-memory terminology for the FHIR code systems, and any profiles
	// stored on the server) and the instance validator; no remote terminology server is used,
	// so validation works offline.
	JpaR4Config.class,
	// Search services and the DatabaseBackedPagingProvider used for paging search results.
	HapiJpaConfig.class,
	// Batch2 job framework (JPA persistence) and its standard jobs (reindex, expunge, ...),
	// which HAPI's DAOs and providers depend on.
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	// Subscription submitter + channel + thread pools: the DAOs call into these on every write
	// (no subscription delivery is configured, so nothing is ever sent anywhere).
	SubscriptionSubmitterConfig.class,
	SubscriptionChannelConfig.class,
	ThreadPoolFactoryConfig.class
})
public class FhirServerConfig {

	/** Storage behaviour; settings chosen for deterministic integration tests. */
	@Bean
	public JpaStorageSettings storageSettings() {
		JpaStorageSettings settings = new JpaStorageSettings();
		// Never answer a search from a cached earlier search: read-after-write must be exact.
		settings.setReuseCachedSearchResultsForMillis(null);
		// PUT Type/some-id with a client-chosen alphanumeric id creates the resource.
		settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
		// Referential integrity: HAPI defaults (checked on write and on delete), stated explicitly.
		settings.setEnforceReferentialIntegrityOnWrite(true);
		settings.setEnforceReferentialIntegrityOnDelete(true);
		settings.setAllowMultipleDelete(false);
		return settings;
	}

	/** Required by HAPI's JPA layer; partitioning stays disabled (the default). */
	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	/** Required by the subscription submitter config; defaults (no channel types enabled). */
	@Bean
	public SubscriptionSettings subscriptionSettings() {
		return new SubscriptionSettings();
	}

	/** The in-memory H2 database; DB_CLOSE_DELAY=-1 keeps it alive between connections. */
	@Bean(destroyMethod = "close")
	public BasicDataSource dataSource(@Value("${fhirconv.hapi.jdbc-url}") String jdbcUrl) {
		BasicDataSource ds = new BasicDataSource();
		ds.setDriverClassName("org.h2.Driver");
		ds.setUrl(jdbcUrl);
		ds.setUsername("sa");
		ds.setPassword("");
		ds.setMaxTotal(20);
		return ds;
	}

	/** Hibernate entity manager factory with HAPI's entity packages and JPA dialect. */
	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings,
			DataSource dataSource) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(dataSource);
		Properties jpa = new Properties();
		jpa.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
		// Create the schema in the fresh in-memory database at start-up.
		jpa.put("hibernate.hbm2ddl.auto", "update");
		// No full-text index (no Lucene/Elasticsearch backend): plain SQL search only.
		jpa.put("hibernate.search.enabled", "false");
		jpa.put("hibernate.format_sql", "false");
		jpa.put("hibernate.show_sql", "false");
		jpa.put("hibernate.jdbc.batch_size", "20");
		emf.setJpaProperties(jpa);
		return emf;
	}

	/** Transaction manager over that entity manager factory (used by every HAPI DAO). */
	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		return new JpaTransactionManager(entityManagerFactory);
	}

	/**
	 * The FHIR REST endpoint: resource providers for every R4 type, the system provider
	 * (transaction/batch POST at the base URL), database-backed paging and a JPA-aware
	 * CapabilityStatement for /metadata.
	 */
	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviderFactory,
			JpaSystemProvider<?, ?> systemProvider,
			DatabaseBackedPagingProvider pagingProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport) {
		RestfulServer server = new RestfulServer(systemDao.getContext());
		server.registerProviders(resourceProviderFactory.createProviders());
		server.registerProvider(systemProvider);
		server.setPagingProvider(pagingProvider);
		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("fhirconv test server (HAPI FHIR JPA, R4, H2 in memory)");
		server.setServerConformanceProvider(capabilities);
		return server;
	}

	/** Mounts the RestfulServer servlet on /fhir/* in the embedded Tomcat. */
	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
		ServletRegistrationBean<RestfulServer> registration =
				new ServletRegistrationBean<>(restfulServer, "/fhir/*");
		registration.setName("fhir");
		registration.setLoadOnStartup(1);
		return registration;
	}
}

// One Jest run over every project, so there is one summary for the whole repository.
module.exports = { projects: ['<rootDir>/libs/*/jest.config.cjs', '<rootDir>/apps/*/jest.config.cjs', '<rootDir>/charts/jest.config.cjs'] };
